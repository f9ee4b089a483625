import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { initBackend, tf } from '../../src/backend/select.js';
import { readCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { RunError, UserError } from '../../src/errors.js';
import { train } from '../../src/train/trainer.js';
import { tinyConfig, tinyLmRun, tmpDir } from './helpers.js';

await initBackend('wasm');
const dir = await tinyLmRun();

function adapterBytes(out: string): Buffer {
  return fs.readFileSync(path.join(out, 'adapter', 'adapter_model.safetensors'));
}

test('a run writes the outputs of docs/architecture.md#run-outputs and the loss goes down', async () => {
  const out = tmpDir('out');
  const s = await train(tinyConfig(dir, { eval: { every: 3, max_batches: 1 } }), { output: out, quiet: true });
  assert.equal(s.steps, 6);
  for (const f of ['metrics.jsonl', 'config.yaml', 'summary.json', 'adapter/adapter_config.json', 'adapter/adapter_model.safetensors', 'checkpoints/latest']) {
    assert.ok(fs.existsSync(path.join(out, f)), f);
  }
  const lines = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const steps = lines.filter((l) => !('eval' in l));
  assert.equal(steps.length, 6);
  for (const k of ['step', 'loss', 'lr', 'tokens_per_s', 'peak_bytes', 'wall_s']) assert.ok(k in (steps[0] as object), k);
  assert.equal(lines.filter((l) => 'eval' in l).length, 3, 'before, at step 3, after');
  // keep: 2 of the checkpoints at steps 2, 4, 6
  assert.deepEqual(fs.readdirSync(path.join(out, 'checkpoints')).sort(), ['latest', 'step-4', 'step-6']);
  assert.equal(fs.readFileSync(path.join(out, 'checkpoints', 'latest'), 'utf8').trim(), 'step-6');
  const ev = s.eval_after as Record<string, number>;
  assert.ok(ev.loss < (s.eval_before as Record<string, number>).loss, `validation loss ${s.eval_before?.loss} -> ${ev.loss}`);
  assert.equal(s.trainable, 2 * (32 + 32 + 32 + 32 + 48 + 48 + 32), '1LoRA: Σ out features of the 7 projections × 2 layers');
});

test('exact resume: 3 steps + --resume to 6 equals 6 straight, byte for byte', async () => {
  const straight = tmpDir('straight');
  await train(tinyConfig(dir), { output: straight, quiet: true });
  const split = tmpDir('split');
  await train(tinyConfig(dir), { output: split, maxSteps: 3, quiet: true });
  assert.equal(fs.readFileSync(path.join(split, 'checkpoints', 'latest'), 'utf8').trim(), 'step-3');
  await train(tinyConfig(dir), { output: split, resume: true, quiet: true });
  assert.ok(adapterBytes(straight).equals(adapterBytes(split)));
});

test('gradient accumulation: micro 4 × 2 equals micro 8 × 1', async () => {
  const a = tmpDir('acc');
  const b = tmpDir('big');
  await train(tinyConfig(dir, {}, ['batch.micro=4']), { output: a, maxSteps: 2, quiet: true });
  await train(tinyConfig(dir, {}, ['batch.micro=8']), { output: b, maxSteps: 2, quiet: true });
  const ta = readSafetensors(path.join(a, 'adapter', 'adapter_model.safetensors')).tensors;
  const tb = readSafetensors(path.join(b, 'adapter', 'adapter_model.safetensors')).tensors;
  let maxDiff = 0;
  for (const [k, t] of ta) {
    const u = tb.get(k)?.data as Float32Array;
    (t.data as Float32Array).forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - (u[i] as number)))));
  }
  assert.ok(maxDiff <= 1e-6, `max difference ${maxDiff}`);
});

test('a corrupt checkpoint and a checkpoint of another config are refused with clear errors', async () => {
  const out = tmpDir('corrupt');
  await train(tinyConfig(dir), { output: out, maxSteps: 2, quiet: true });
  const ck = path.join(out, 'checkpoints', 'step-2');
  assert.throws(() => readCheckpoint(ck, 'another-hash'), (e: unknown) => e instanceof UserError && /config hash/.test(e.message));
  const f = path.join(ck, 'trainable.safetensors');
  const bytes = fs.readFileSync(f);
  bytes[bytes.length - 1] ^= 0xff;
  fs.writeFileSync(f, bytes);
  await assert.rejects(train(tinyConfig(dir), { output: out, resume: true, quiet: true }), (e: unknown) => e instanceof UserError && /checksum mismatch/.test(e.message) && e.message.includes('trainable.safetensors'));
});

test('a NaN loss stops the run naming the step, and no checkpoint is written for it', async () => {
  const out = tmpDir('nan');
  await assert.rejects(train(tinyConfig(dir, {}, ['optim.lr=1e30', 'optim.grad_clip=0']), { output: out, quiet: true }), (e: unknown) => e instanceof RunError && /step \d+/.test(e.message));
  const latest = path.join(out, 'checkpoints', 'latest');
  if (fs.existsSync(latest)) {
    const state = readCheckpoint(path.join(out, 'checkpoints', fs.readFileSync(latest, 'utf8').trim())).state;
    const metrics = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; loss?: number });
    assert.ok(metrics.filter((m) => m.step <= state.step && m.loss !== undefined).every((m) => Number.isFinite(m.loss)), 'only finite steps were checkpointed');
  }
});

test('no tensor leak: tf.memory().numTensors is flat over 20 steps', async () => {
  const out = tmpDir('leak');
  const cfg = tinyConfig(dir, { schedule: { name: 'constant', total_steps: 40 }, checkpoint: { every: 0, keep: 1 } });
  await train(cfg, { output: out, maxSteps: 5, quiet: true });
  const before = tf.memory().numTensors;
  await train(cfg, { output: out, maxSteps: 25, resume: true, quiet: true });
  const after = tf.memory().numTensors;
  assert.equal(after, before, `tensors ${before} -> ${after} over 20 more steps`);
});

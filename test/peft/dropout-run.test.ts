// Adapter dropout in real runs of the tiny LLaMA (test/train/helpers.ts): its masks depend on the
// samples, never on how they are batched or which rank holds them, so the run contracts of
// docs/architecture.md#contracts hold with dropout > 0 — accumulation, exact resume, and a 2-rank
// launch equal to one process.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { initBackend } from '../../src/backend/select.js';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { train } from '../../src/train/trainer.js';
import { launch } from '../../coordinator/launcher.js';
import { tinyConfig, tinyLmRun, tmpDir } from '../train/helpers.js';

await initBackend('wasm');
const dir = await tinyLmRun();
const METHOD = 'lora:r=2,alpha=16,dropout=0.3';
const cfg = (sets: string[] = []) => tinyConfig(dir, { method: METHOD, batch: { global: 8, micro: 2 } }, ['distributed.allreduce_timeout_s=20', ...sets]);

function adapter(out: string): Map<string, Float32Array> {
  return new Map([...readSafetensors(path.join(out, 'adapter', 'adapter_model.safetensors')).tensors].map(([k, v]) => [k, v.data as Float32Array]));
}

function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  let d = 0;
  for (const [k, x] of a) x.forEach((v, i) => (d = Math.max(d, Math.abs(v - b.get(k)![i]!))));
  return d;
}

async function run(sets: string[], maxSteps = 3): Promise<string> {
  const out = tmpDir('dropout-run');
  await train(cfg(sets), { output: out, maxSteps, quiet: true });
  return out;
}

test('dropout acts in training, and micro-batches of 2 × 4 equal 8 × 1 (masks follow the samples, not the padding)', async () => {
  const a = await run([]);
  const b = await run(['batch.micro=8']);
  assert.ok(maxDiff(adapter(a), adapter(b)) <= 1e-6, 'accumulation with dropout');
  const none = await run(['method=lora:r=2,alpha=16']);
  assert.ok(maxDiff(adapter(a), adapter(none)) > 1e-4, 'dropout 0.3 changes the updates');
  const cfgJson = JSON.parse(fs.readFileSync(path.join(a, 'adapter', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(cfgJson.lora_dropout, 0.3);
  assert.equal(cfgJson.lora_alpha, 16);
});

test('exact resume with dropout: 3 steps + --resume to 6 equals 6 straight, byte for byte', async () => {
  const straight = tmpDir('dropout-straight');
  await train(cfg(), { output: straight, quiet: true });
  const split = tmpDir('dropout-split');
  await train(cfg(), { output: split, maxSteps: 3, quiet: true });
  await train(cfg(), { output: split, resume: true, quiet: true });
  const bytes = (out: string): Buffer => fs.readFileSync(path.join(out, 'adapter', 'adapter_model.safetensors'));
  assert.ok(bytes(straight).equals(bytes(split)));
});

test('launch --workers 2 with dropout trains the single-process adapter', async () => {
  const single = await run([]);
  const group = tmpDir('dropout-launch');
  const r = await launch({ cfg: cfg(), workers: 2, output: group, maxSteps: 3, quiet: true, backend: 'wasm', env: { ONELORA_LOG: 'warn' }, heartbeatTimeoutMs: 20_000 });
  assert.equal(r.summary.steps, 3);
  const d = maxDiff(adapter(group), adapter(single));
  assert.ok(d <= 1e-5, `max |Δ| ${d}`);
});

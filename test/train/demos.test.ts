// The tiny demo presets run through train() (a few steps: finite loss, the run outputs,
// docs/architecture.md#run-outputs), and a DiT adapter goes end to end into `onelora sample --adapter` — including a
// class table the run created for a dataset with other classes than the base model.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { initBackend } from '../../src/backend/select.js';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { loadPreset, repoRoot } from '../../src/config/index.js';
import { runSample } from '../../src/cli/commands/sample.js';
import { formatSummary } from '../../src/cli/summary.js';
import { DIT_CLASS_TABLE, loadDit, saveDit } from '../../src/models/dit-load.js';
import { loadAdapter } from '../../src/peft/adapter-io.js';
import { train } from '../../src/train/trainer.js';
import { tmpDir } from '../helpers.js';

await initBackend('wasm');

function assertRunOutputs(out: string, steps: number): void {
  for (const f of ['metrics.jsonl', 'summary.json', 'config.yaml', 'adapter/adapter_config.json', 'adapter/adapter_model.safetensors', 'checkpoints/latest']) {
    assert.ok(fs.existsSync(path.join(out, f)), `${f} exists`);
  }
  const lines = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; loss?: number });
  const losses = lines.filter((l) => l.loss !== undefined);
  assert.equal(losses.length, steps);
  assert.ok(losses.every((l) => Number.isFinite(l.loss)), 'every step loss is finite');
}

void test('tiny-vit-demo: 3 steps through train() on the committed demo backbone and shapes', async () => {
  const out = tmpDir('vit-demo');
  const s = await train(loadPreset('tiny-vit-demo', ['eval.max_batches=1']), { output: out, maxSteps: 3, quiet: true, backend: 'wasm' });
  assert.equal(s.steps, 3);
  assert.ok(Number.isFinite(s.final_loss));
  assert.equal(s.head, 64 * 10 + 10, 'the new classifier is the head');
  assert.ok(s.eval_after && Number.isFinite(s.eval_after.accuracy!));
  assertRunOutputs(out, 3);
});

void test('tiny-dit-demo: 2 steps through train() end with sample grids and a tiny FID before and after; then onelora sample --adapter (a real process)', async () => {
  const out = tmpDir('dit-demo');
  // Fewer and shorter samples than the preset's 100 × 10 DDIM steps, to keep the test short.
  const s = await train(loadPreset('tiny-dit-demo', ['eval.max_batches=1', 'diffusion.fid_samples=20', 'diffusion.sample_steps=3']), { output: out, maxSteps: 2, quiet: true, backend: 'wasm' });
  assert.equal(s.steps, 2);
  assert.ok(Number.isFinite(s.final_loss));
  assertRunOutputs(out, 2);
  const fid = s.fid!;
  assert.ok(fid, 'summary has the sample FID');
  assert.deepEqual([fid.samples, fid.reference], [20, 100], '20 samples against the 100 decoded validation latents');
  assert.ok(fid.before! > 0 && Number.isFinite(fid.before) && fid.after! > 0 && Number.isFinite(fid.after), JSON.stringify(fid));
  assert.notEqual(fid.before, fid.after, 'two steps of training change the samples');
  assert.match(fid.network, /not comparable to Inception FID/);
  const written = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')) as { fid: typeof fid };
  assert.deepEqual(written.fid, fid);
  // 20 samples of 32×32 (the demo VAE's factor 4 on 8×8 latents) in a 5 × 4 grid with 2 px padding; 100 held-out images 10 × 10.
  for (const [file, w, h] of [[fid.grid_before!, 172, 138], [fid.grid_after!, 172, 138], ['samples/held-out.png', 342, 342]] as const) {
    const meta = await sharp(path.join(out, file)).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', w, h], file);
  }
  assert.match(formatSummary(s), /sample FID: +[\d.]+ before → [\d.]+ after \(20 samples vs 100 held-out images/);
  const file = path.join(out, 'z.safetensors');
  const r = spawnSync(process.execPath, [path.join(repoRoot(), 'bin', 'onelora.js'), 'sample', '--model', path.join(repoRoot(), 'models', 'demo-dit'), '--adapter', path.join(out, 'adapter'),
    '--class', '3', '--steps', '2', '--sampler', 'ddim', '--backend', 'wasm', '--out', file, '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const z = readSafetensors(file).tensors.get('latents')!;
  assert.deepEqual(z.shape, [1, 4, 8, 8]);
  assert.ok(Array.from(z.data).every(Number.isFinite));
  const bad = spawnSync(process.execPath, [path.join(repoRoot(), 'bin', 'onelora.js'), 'sample', '--model', 'tiny-dit', '--adapter', out, '--class', '3', '--out', file], { encoding: 'utf8' });
  assert.equal(bad.status, 2, 'a directory without an adapter is a user error');
});

void test('a DiT checkpoint with other classes: the run creates, trains and saves a class table; sample --adapter resizes to it', async () => {
  const dir = tmpDir('dit-table');
  const base = loadDit('tiny-dit', { init: 'random', seed: 5, numClasses: 4 });
  await saveDit(base, path.join(dir, 'base'));
  base.dispose();
  const out = path.join(dir, 'run');
  const cfg = loadPreset('tiny-dit-demo', [`model.path=${path.join(dir, 'base')}`, 'eval.max_batches=1', 'diffusion.fid_samples=10', 'diffusion.sample_steps=2']);
  const s = await train(cfg, { output: out, maxSteps: 2, quiet: true, backend: 'wasm' });
  assert.equal(s.head, 11 * 64, 'the demo latents have 10 classes: a new 11-row table (with the null class)');
  const saved = readSafetensors(path.join(out, 'adapter', 'adapter_model.safetensors')).tensors.get(`base_model.model.${DIT_CLASS_TABLE}`);
  assert.deepEqual(saved?.shape, [11, 64]);
  const cfgJson = JSON.parse(fs.readFileSync(path.join(out, 'adapter', 'adapter_config.json'), 'utf8')) as { modules_to_save: string[] };
  assert.deepEqual(cfgJson.modules_to_save, ['embedding_table']);
  // Class 7 exists only in the adapter's table (the base has 4 classes).
  const r = await runSample({ model: path.join(dir, 'base'), adapter: path.join(out, 'adapter'), class: 7, steps: 2, cfg: 2, sampler: 'ddpm', eta: 0, num: 1, seed: 0, out: path.join(dir, 'z.safetensors'), backend: 'wasm' },
    { applyAdapter: (model, d) => loadAdapter(d, model) });
  assert.deepEqual(r.shape, [1, 4, 8, 8]);
});

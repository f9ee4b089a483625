// `onelora merge` of DiT adapters: an adapter that carries a new class table (a Food-101-style
// fine-tune) merges into a model with that table and class count, and `--layout diffusers` writes
// the names scripts/make-dit-fixtures.py's independent diffusers-layout checkpoint holds.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import zlib from 'node:zlib';
import { initBackend, tf } from '../../src/backend/select.js';
import { openSafetensors, readSafetensors } from '../../src/checkpoint/safetensors.js';
import { registerMerge } from '../../src/cli/commands/merge.js';
import { saveDitDiffusers } from '../../src/models/dit-diffusers.js';
import { DIT_CLASS_TABLE, loadDit } from '../../src/models/dit-load.js';
import { Rng } from '../../src/nn/rng.js';
import { saveAdapter } from '../../src/peft/adapter-io.js';
import { applyMethod } from '../../src/peft/apply.js';
import { ditForward as forward, maxAbsDiff, runCommands, tmpDir } from './helpers.js';

await initBackend('wasm');
const ROOT = path.resolve(import.meta.dirname, '../..');
const DEMO = path.join(ROOT, 'models', 'demo-dit');
const FIX = path.join(ROOT, 'test', 'fixtures', 'dit');

/** Lets the test runner write its report of the previous test before stdout is captured. */
const run = async (...args: string[]) => {
  await new Promise((r) => setTimeout(r, 100));
  return runCommands([registerMerge], ...args);
};
const last = (out: string): Record<string, unknown> => JSON.parse(out.slice(out.lastIndexOf('{"out"')).split('\n')[0]!) as Record<string, unknown>;

test('merge of an adapter with a new class table (6 classes on a 10-class base), in both layouts', async () => {
  const dir = tmpDir();
  const adapter = path.join(dir, 'adapter');
  const model = loadDit(DEMO, { numClasses: 6, seed: 3 });
  const peft = applyMethod(model, '1lora', { headParams: [DIT_CLASS_TABLE] });
  let k = 0;
  for (const v of peft.trainable.values()) {
    const r = Rng.from(17, k++);
    tf.tidy(() => v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => r.uniform(-0.05, 0.05)), v.shape)));
  }
  const adapted = await forward(model, 6);
  await saveAdapter(adapter, peft, { baseModel: DEMO, taskType: 'diffusion' });
  peft.dispose();
  model.dispose();

  const out = path.join(dir, 'merged');
  const r = await run('merge', '--model', DEMO, '--adapter', adapter, '--out', out, '--json');
  assert.equal(r.code, 0, r.err);
  assert.equal(last(r.out).num_classes, 6);
  assert.equal(last(r.out).layout, 'original');
  const merged = loadDit(out);
  assert.equal(merged.config.numClasses, 6);
  assert.ok(maxAbsDiff(await forward(merged, 6), adapted) < 1e-4, 'merged ≡ adapted');
  merged.dispose();

  const outD = path.join(dir, 'merged-diffusers');
  const d = await run('merge', '--model', DEMO, '--adapter', adapter, '--out', outD, '--layout', 'diffusers', '--json');
  assert.equal(d.code, 0, d.err);
  assert.ok(fs.existsSync(path.join(outD, 'transformer', 'config.json')));
  // diffusers' timestep convention differs (shift 1); with facebookresearch's the outputs agree.
  const md = loadDit(outD, { timestepShift: 0, mlpNormEps: 1e-6 });
  assert.equal(md.config.numClasses, 6);
  assert.ok(maxAbsDiff(await forward(md, 6), adapted) < 1e-4, 'diffusers layout ≡ adapted');
  md.dispose();
  // The default layout is the one --model has: a diffusers base merges back to diffusers.
  const back = await run('merge', '--model', outD, '--adapter', adapter, '--out', path.join(dir, 'again'), '--json');
  assert.equal(back.code, 0, back.err);
  assert.equal(last(back.out).layout, 'diffusers');
  const bad = await run('merge', '--model', DEMO, '--adapter', adapter, '--out', path.join(dir, 'x'), '--layout', 'keras');
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--layout/);
});

test('--layout diffusers names, shapes and values equal the fixture script\'s diffusers checkpoint', async () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'model.safetensors'), zlib.gunzipSync(fs.readFileSync(path.join(FIX, 'orig-f32.safetensors.gz'))));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'dit', num_heads: 4 }));
  const model = loadDit(dir);
  const out = path.join(dir, 'out');
  await saveDitDiffusers(model, out, { dtype: 'F32' });
  model.dispose();
  const refFile = path.join(dir, 'ref.safetensors');
  fs.writeFileSync(refFile, zlib.gunzipSync(fs.readFileSync(path.join(FIX, 'diffusers-f16', 'diffusion_pytorch_model.safetensors.gz'))));
  const ref = readSafetensors(refFile).tensors;
  const mine = openSafetensors(path.join(out, 'transformer', 'diffusion_pytorch_model.safetensors'));
  assert.deepEqual([...mine.tensors.keys()].sort(), [...ref.keys()].sort());
  for (const [name, t] of ref) {
    assert.deepEqual(mine.tensors.get(name)!.shape, t.shape, name);
    assert.ok(maxAbsDiff(mine.read(name).data as Float32Array, t.data as Float32Array) === 0, name);
  }
  mine.close();
  const cfg = JSON.parse(fs.readFileSync(path.join(out, 'transformer', 'config.json'), 'utf8')) as Record<string, unknown>;
  const want = JSON.parse(fs.readFileSync(path.join(FIX, 'diffusers-f16', 'config.json'), 'utf8')) as Record<string, unknown>;
  for (const [k, v] of Object.entries(want)) if (k !== 'norm_eps') assert.deepEqual(cfg[k], v, k);
});

// Golden forward of a tiny random DiT against scripts/make-dit-fixtures.py (an independent float64
// torch implementation), through the public loader in both key layouts (F32 and F16 storage), plus
// counts, save/load round trip and tensor lifetimes.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import zlib from 'node:zlib';
import { initBackend, tf } from '../../src/backend/select.js';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { DIT_PRESETS, describeDit, type DitModel } from '../../src/models/dit.js';
import { countDitParams, loadDit, saveDit } from '../../src/models/dit-load.js';
import { tmpDir as sharedTmpDir } from '../helpers.js';

const tmpDir = (): string => sharedTmpDir('dit');

await initBackend('wasm');
const FIX = path.join(import.meta.dirname, '..', 'fixtures', 'dit');
const golden = readSafetensors(path.join(FIX, 'golden.safetensors')).tensors;
const g = (name: string): Float32Array | Int32Array => golden.get(name)!.data as Float32Array | Int32Array;

/**
 * The committed checkpoints are gzipped; unpack them where the loader expects them. A facebookresearch
 * state dict does not say its head count (DiT's own sizes are known by hidden size): config.json does.
 */
function unpackOrig(withConfig = true): string {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'model.safetensors'), zlib.gunzipSync(fs.readFileSync(path.join(FIX, 'orig-f32.safetensors.gz'))));
  if (withConfig) fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'dit', num_heads: 4 }));
  return dir;
}

function unpackDiffusers(): string {
  const dir = tmpDir();
  const tr = path.join(dir, 'transformer');
  fs.mkdirSync(tr);
  fs.copyFileSync(path.join(FIX, 'diffusers-f16', 'config.json'), path.join(tr, 'config.json'));
  fs.writeFileSync(path.join(tr, 'diffusion_pytorch_model.safetensors'), zlib.gunzipSync(fs.readFileSync(path.join(FIX, 'diffusers-f16', 'diffusion_pytorch_model.safetensors.gz'))));
  return dir;
}

function runGolden(model: DitModel): Float32Array {
  const x = tf.tensor4d(g('x') as Float32Array, [3, 4, 8, 8]);
  const out = model.forward(x, g('t'), g('y'));
  assert.deepEqual(out.shape, [3, 8, 8, 8]);
  const data = out.dataSync() as Float32Array;
  tf.dispose([x, out]);
  return data;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

void test('facebookresearch layout (F32) matches the torch reference to 1e-4', () => {
  assert.throws(() => loadDit(unpackOrig(false)), /num_heads is needed for hidden size 64/);
  const model = loadDit(unpackOrig());
  assert.equal(model.config.heads, 4);
  assert.equal(model.config.inputSize, 8);
  assert.equal(model.config.numClasses, 10);
  const d = maxAbsDiff(runGolden(model), g('out_orig'));
  assert.ok(d < 1e-4, `max |diff| ${d}`);
  model.dispose();
});

void test('diffusers layout (F16, separate q/k/v, per-block embedders) matches the torch reference to 1e-4', () => {
  const model = loadDit(unpackDiffusers());
  assert.equal(model.config.timestepShift, 1);
  const d = maxAbsDiff(runGolden(model), g('out_diffusers'));
  assert.ok(d < 1e-4, `max |diff| ${d}`);
  // The same weights under DiT's own conventions give DiT's output.
  const asDit = loadDit(unpackDiffusers(), { timestepShift: 0, mlpNormEps: 1e-6 });
  assert.ok(maxAbsDiff(runGolden(asDit), g('out_orig')) < 1e-4);
  model.dispose();
  asDit.dispose();
});

void test('save → load round trip is exact, and the saved file is deterministic', async () => {
  const model = loadDit(unpackOrig());
  const a = tmpDir();
  const b = tmpDir();
  await saveDit(model, a);
  await saveDit(model, b);
  assert.ok(fs.readFileSync(path.join(a, 'model.safetensors')).equals(fs.readFileSync(path.join(b, 'model.safetensors'))));
  const again = loadDit(a);
  assert.deepEqual(again.config, { ...model.config, name: again.config.name });
  assert.equal(maxAbsDiff(runGolden(again), runGolden(model)), 0);
  model.dispose();
  again.dispose();
});

void test('strict loading names a missing tensor, an unexpected tensor and mismatched embedder copies', async () => {
  const { writeSafetensors } = await import('../../src/checkpoint/safetensors.js');
  const dir = unpackOrig();
  const file = path.join(dir, 'model.safetensors');
  const all = readSafetensors(file).tensors;
  const asWrite = (m: Map<string, { shape: readonly number[]; data: unknown }>) =>
    Object.fromEntries([...m].map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: v.data as Float32Array }]));
  const missing = new Map(all);
  missing.delete('blocks.1.mlp.fc2.bias');
  writeSafetensors(file, asWrite(missing));
  assert.throws(() => loadDit(dir), /blocks\.1\.mlp\.fc2\.bias' is missing/);
  const extra = new Map(all);
  extra.set('blocks.2.mlp.fc2.bias', all.get('blocks.1.mlp.fc2.bias')!);
  writeSafetensors(file, asWrite(extra));
  assert.throws(() => loadDit(dir), /unexpected tensor 'blocks\.2\.mlp\.fc2\.bias'/);

  const ddir = unpackDiffusers();
  const dfile = path.join(ddir, 'transformer', 'diffusion_pytorch_model.safetensors');
  const dall = new Map(readSafetensors(dfile).tensors);
  const key = 'transformer_blocks.1.norm1.emb.timestep_embedder.linear_2.bias';
  const changed = Float32Array.from(dall.get(key)!.data as Float32Array);
  changed[0]! += 1;
  dall.set(key, { ...dall.get(key)!, data: changed });
  writeSafetensors(dfile, asWrite(dall));
  assert.throws(() => loadDit(ddir), /differs from/);
});

void test('describeDit counts equal the variables built (tiny-dit) and the DiT-XL/2 figures', () => {
  const cfg = DIT_PRESETS['tiny-dit']!;
  const d = describeDit(cfg);
  const model = loadDit('tiny-dit', { seed: 3 });
  assert.equal(countDitParams(model), d.totalParams);
  assert.deepEqual(model.linears().map((l) => [l.path, l.inFeatures, l.outFeatures, l.role]), d.linears.map((l) => [l.path, l.inFeatures, l.outFeatures, l.role]));
  assert.deepEqual(d.headPaths, []);
  assert.deepEqual(d.norms, []);
  model.dispose();

  const xl = describeDit(DIT_PRESETS['dit-xl-2-256']!);
  assert.equal(xl.linears.length, 2 + 28 * 5 + 2);
  // 1LoRA on all-linear trains Σ out features.
  const oneLora = xl.linears.reduce((a, l) => a + l.outFeatures, 0);
  assert.equal(oneLora, 1152 * 2 + 28 * (6 + 3 + 1 + 4 + 1) * 1152 + 2 * 1152 + 32);
  assert.equal(xl.totalParams, 675_129_632 - 256 * 1152); // DiT-XL/2's count without the fixed pos_embed
});

void test('forward and forwardWithCfg keep the tensor count flat', () => {
  const model = loadDit('tiny-dit', { seed: 1, init: 'random' });
  const x = tf.randomNormal([2, 4, 8, 8]) as tf.Tensor4D;
  const before = tf.memory().numTensors;
  for (let i = 0; i < 2; i++) {
    tf.dispose(model.forward(x, [1, 500], [0, 10]));
    tf.dispose(model.forwardWithCfg(x, [1, 500], [3, 4], 4));
  }
  assert.equal(tf.memory().numTensors, before);
  // cfg = 1 reduces to the conditional output.
  const a = model.forward(x, [7, 7], [3, 4]);
  const b = model.forwardWithCfg(x, [7, 7], [3, 4], 1);
  assert.ok(maxAbsDiff(a.dataSync(), b.dataSync()) < 1e-5);
  tf.dispose([a, b, x]);
  model.dispose();
});

void test('numClasses resizes the class table (a new task head, reported in created) in both layouts', () => {
  for (const dir of [unpackOrig(), unpackDiffusers()]) {
    const model = loadDit(dir, { numClasses: 101, seed: 5 });
    assert.deepEqual(model.created, ['y_embedder.embedding_table.weight']);
    assert.deepEqual(model.parts.yTable.shape, [102, 64]);
    assert.equal(model.nullClass, 101);
    const x = tf.zeros([1, 4, 8, 8]) as tf.Tensor4D;
    const out = model.forward(x, [10], [100]);
    assert.ok(out.dataSync().every(Number.isFinite));
    tf.dispose([x, out]);
    model.dispose();
  }
  const same = loadDit(unpackOrig(), { numClasses: 10 });
  assert.deepEqual(same.created, []);
  same.dispose();
});

void test("the paper's Table S8 counts: blocks + final layer linears and a new 102-row class table", () => {
  const xl = describeDit(DIT_PRESETS['dit-xl-2-256']!);
  const paper = xl.linears.filter((l) => /^(blocks|final_layer)\./.test(l.path));
  const table = 102 * 1152; // Food-101's 101 classes + the null class
  assert.equal(paper.reduce((a, l) => a + l.outFeatures, 0) + table, 603_680); // 1LoRA, BitFit: 603.68K
  assert.equal(paper.reduce((a, l) => a + l.inFeatures + l.outFeatures, 0) + table, 864_032); // LoRA r=1: 864.03K
  assert.equal(paper.reduce((a, l) => a + l.outFeatures + 1, 0) + table, 603_822); // VeRA r=1: 603.82K
});

// DiT through the registry and the PEFT library: loadModel sizes and reports a new class table,
// merge ≡ adapted for 1LoRA and LoRA, an adapter carries the class table (modules_to_save) and
// loads back onto a fresh model, and `params` reproduces the paper's Table S8 with --num-labels.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { initBackend, tf } from '../../src/backend/select.js';
import { Rng } from '../../src/nn/rng.js';
import type { DitModel } from '../../src/models/dit.js';
import { DIT_CLASS_TABLE, loadDit, saveDit } from '../../src/models/dit-load.js';
import { describeModel, loadModel } from '../../src/models/registry.js';
import { loadAdapter, saveAdapter } from '../../src/peft/adapter-io.js';
import { applyMethod } from '../../src/peft/apply.js';
import { countTrainable } from '../../src/peft/count.js';
import { maxAbsDiff, tmpDir } from './helpers.js';

await initBackend('wasm');

const B = 2;
const t = [17, 640];
const y = [3, 1];

function latents(): tf.Tensor4D {
  const r = Rng.from(5, 1);
  return tf.tensor4d(Float32Array.from({ length: B * 4 * 8 * 8 }, () => r.uniform(-1, 1)), [B, 4, 8, 8]);
}

function run(model: DitModel): Float32Array {
  return tf.tidy(() => model.forward(latents(), t, y).dataSync() as Float32Array).slice();
}

/** Trained-looking adapter values: every trainable tensor filled with seeded noise. */
function randomise(vars: Iterable<tf.Variable>, scale: number): void {
  let k = 0;
  for (const v of vars) {
    const r = Rng.from(99, k++);
    tf.tidy(() => v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => r.uniform(-scale, scale)), v.shape)));
  }
}

void test('loadModel returns the DiT (family dit) and reports a class table made for the task in created', async () => {
  const same = await loadModel('tiny-dit', { numLabels: 10 });
  assert.equal(same.family, 'dit');
  assert.deepEqual(same.created, []);
  same.model.dispose();
  const dir = tmpDir();
  const base = loadDit('tiny-dit', { init: 'random', seed: 2 });
  await saveDit(base, dir);
  base.dispose();
  const resized = await loadModel(dir, { numLabels: 4 });
  assert.equal(resized.family, 'dit');
  assert.deepEqual(resized.created, [DIT_CLASS_TABLE]);
  assert.deepEqual(resized.model.parameters().get(DIT_CLASS_TABLE)!.shape, [5, 64]); // 4 classes + null
  resized.model.dispose();
  const preset = await loadModel('tiny-dit', { numLabels: 4 });
  assert.deepEqual(preset.created, [DIT_CLASS_TABLE]);
  preset.model.dispose();
});

for (const spec of ['1lora', 'lora:r=2']) {
  void test(`DiT ${spec}: merge ≡ adapted; dispose restores the base`, () => {
    const model = loadDit('tiny-dit', { init: 'random', seed: 1 });
    const before = run(model);
    const peft = applyMethod(model, spec, { seed: 3 });
    assert.equal(peft.targets.length, model.linears().length, 'all-linear is every DiT linear (docs/architecture.md#method-spec)');
    randomise(peft.trainable.values(), 0.05);
    const adapted = run(model);
    assert.ok(maxAbsDiff(adapted, before) > 1e-3, 'the adapter changes the output');
    peft.merge();
    assert.ok(maxAbsDiff(run(model), adapted) < 1e-4, 'merged ≡ adapted');
    peft.unmerge();
    assert.ok(maxAbsDiff(run(model), adapted) < 1e-4, 'unmerged: the adapter runs again');
    peft.dispose();
    assert.ok(maxAbsDiff(run(model), before) < 1e-4, 'dispose restores the base');
    model.dispose();
  });
}

void test('an adapter with a new class table saves it (modules_to_save) and loads onto a fresh model', async () => {
  const dir = tmpDir();
  const model = loadDit('tiny-dit', { init: 'random', seed: 4, numClasses: 6 });
  const table = model.parameters().get(DIT_CLASS_TABLE)!;
  assert.equal(table.trainable, false);
  const peft = applyMethod(model, '1lora', { headParams: [DIT_CLASS_TABLE] });
  assert.equal(table.trainable, true, 'the table trains whole (one-hot matmul path)');
  assert.ok(peft.headKeys.has(`base_model.model.${DIT_CLASS_TABLE}`));
  randomise(peft.trainable.values(), 0.05);
  const adapted = run(model);
  await saveAdapter(dir, peft, { baseModel: 'tiny-dit', taskType: 'diffusion' });
  peft.dispose();
  assert.equal(table.trainable, false, 'dispose restores the flag');
  model.dispose();

  const fresh = loadDit('tiny-dit', { init: 'random', seed: 4, numClasses: 6 });
  const loaded = loadAdapter(dir, fresh);
  assert.ok(maxAbsDiff(run(fresh), adapted) < 1e-5);
  loaded.dispose();
  fresh.dispose();
});

void test("params: dit-xl-2-256 with --num-labels 101 and the paper's targets gives Table S8's 1LoRA count", async () => {
  const d = await describeModel('dit-xl-2-256', { numLabels: 101 });
  const r = countTrainable(d, '1lora', { targets: '(blocks|final_layer)\\..*' });
  assert.equal(r.trainable, 486_176);
  assert.equal(r.head, 102 * 1152);
  assert.equal(r.trainable + r.head, 603_680); // the paper's 603.68K
  const all = countTrainable(await describeModel('dit-xl-2-256'), '1lora');
  assert.equal(all.trainable, 488_480); // docs/architecture.md#method-spec all-linear: + the timestep-embedder MLP
  assert.equal(all.head, 0);
});

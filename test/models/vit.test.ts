import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { initBackend, tf } from '../../src/backend/select.js';
import { loadModel } from '../../src/models/registry.js';
import { VitModel } from '../../src/models/vit.js';
import { FIXTURES, expected, maxAbsDiff, values } from './helpers.js';

await initBackend('wasm');

async function loadVit(name: string, numLabels?: number): Promise<{ model: VitModel; created: string[] }> {
  const loaded = await loadModel(path.join(FIXTURES, name), { numLabels });
  assert.ok(loaded.model instanceof VitModel);
  return { model: loaded.model, created: loaded.created };
}

for (const key of ['native', 'resized'] as const) {
  void test(`ViT logits match the torch reference to 1e-4 (${key} image size)`, async () => {
    const { model, created } = await loadVit('vit');
    assert.deepEqual(created, []);
    const e = expected.vit[key];
    const logits = model.logits(tf.tensor4d(e.pixels, e.shape));
    assert.deepEqual(logits.shape, [2, 5]);
    const diff = maxAbsDiff(values(logits), e.logits);
    assert.ok(diff < 1e-4, `max |Δlogits| = ${diff}`);
    model.dispose();
  });
}

void test('ViT with layer scale and register tokens, stored headless (no vit. prefix, a pooler) matches features', async () => {
  const { model } = await loadVit('vit-registers');
  assert.equal(model.config.numRegisterTokens, 2);
  assert.equal(model.config.numLabels, 0);
  assert.deepEqual(model.headPaths, []);
  const e = expected['vit-registers'];
  const f = tf.tidy(() => model.features(tf.tensor4d(e.pixels, e.shape)));
  assert.deepEqual(f.shape, [1, 1 + 2 + 16, 32]);
  const diff = maxAbsDiff(values(f), e.features);
  assert.ok(diff < 1e-4, `max |Δfeatures| = ${diff}`);
  model.dispose();
});

void test('config, labels and preprocessing come from the directory; module paths and roles are HF names', async () => {
  const { model } = await loadVit('vit');
  assert.deepEqual(model.config.labels, ['ant', 'bee', 'cat', 'dog', 'eel']);
  assert.equal(model.config.preprocess.height, 16);
  assert.deepEqual(model.config.preprocess.mean, [0.5, 0.5, 0.5]);
  assert.deepEqual(model.headPaths, ['classifier']);
  const first = model.linears().slice(0, 6).map((l) => [l.path, l.role]);
  assert.deepEqual(first, [
    ['vit.encoder.layer.0.attention.attention.query', 'q'], ['vit.encoder.layer.0.attention.attention.key', 'k'],
    ['vit.encoder.layer.0.attention.attention.value', 'v'], ['vit.encoder.layer.0.attention.output.dense', 'attn_out'],
    ['vit.encoder.layer.0.intermediate.dense', 'mlp_in'], ['vit.encoder.layer.0.output.dense', 'mlp_out'],
  ]);
  assert.equal(model.linears().at(-1)!.role, 'head');
  model.dispose();
});

void test('a classifier of another size is re-created for numLabels (seeded, reported); a headless model gets one', async () => {
  const a = await loadVit('vit', 3);
  assert.deepEqual(a.created, ['classifier.weight', 'classifier.bias']);
  assert.deepEqual(a.model.parameters().get('classifier.weight')!.shape, [32, 3]); // kernel layout [in, out]
  const b = await loadVit('vit', 3);
  assert.deepEqual(values(a.model.parameters().get('classifier.weight')!), values(b.model.parameters().get('classifier.weight')!));
  const c = await loadVit('vit-registers', 4);
  assert.deepEqual(c.created, ['classifier.weight', 'classifier.bias']);
  const e = expected['vit-registers'];
  assert.deepEqual(c.model.logits(tf.tensor4d(e.pixels, e.shape)).shape, [1, 4]);
  for (const m of [a, b, c]) m.model.dispose();
});

void test('training step: gradients reach a trainable classifier and tensors stay flat', async () => {
  const { model } = await loadVit('vit');
  const w = model.parameters().get('classifier.weight')!;
  w.trainable = true;
  const head = model.linears().at(-1)!;
  head.trainWeight = true;
  const e = expected.vit.native;
  const px = tf.tensor4d(e.pixels, e.shape);
  const step = (): void => {
    const { value, grads } = tf.variableGrads(() => tf.sum(model.logits(px)) as tf.Scalar, [w]);
    assert.ok(tf.tidy(() => tf.sum(tf.abs(grads[w.name]!)).dataSync()[0]!) > 0);
    tf.dispose([value, ...Object.values(grads)]);
  };
  step();
  const before = tf.memory().numTensors;
  step();
  step();
  assert.equal(tf.memory().numTensors, before);
  px.dispose();
  model.dispose();
});

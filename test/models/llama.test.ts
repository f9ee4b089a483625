import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { initBackend, tf } from '../../src/backend/select.js';
import { loadModel } from '../../src/models/registry.js';
import { LlamaModel } from '../../src/models/llama.js';
import { argmax } from '../../src/models/generate.js';
import { FIXTURES, expected, maxAbsDiff, values } from './helpers.js';

await initBackend('wasm');

async function loadLlama(name: string): Promise<LlamaModel> {
  const { model } = await loadModel(path.join(FIXTURES, name));
  assert.ok(model instanceof LlamaModel);
  return model;
}

for (const name of ['llama-gqa', 'llama-f16', 'llama-tied-sharded'] as const) {
  void test(`${name}: logits and loss sum match the torch reference to 1e-4`, async () => {
    const model = await loadLlama(name);
    const e = expected[name];
    const ids = tf.tensor2d(e.input_ids, undefined, 'int32');
    const labels = tf.tensor2d(e.labels, undefined, 'int32');
    const logits = model.logits(ids);
    assert.deepEqual(logits.shape, [2, 7, model.config.vocabSize]);
    const diff = maxAbsDiff(values(logits), e.logits);
    assert.ok(diff < 1e-4, `max |Δlogits| = ${diff}`);
    const loss = model.lossSum(ids, labels);
    assert.ok(Math.abs(loss.dataSync()[0]! - e.loss_sum) < 1e-4 * Math.max(1, Math.abs(e.loss_sum)), `loss ${loss.dataSync()[0]} vs ${e.loss_sum}`);
    tf.dispose([ids, labels, logits, loss]);
    model.dispose();
  });
}

void test('greedy generation equals the reference greedy continuation and argmax of logits step by step', async () => {
  const model = await loadLlama('llama-gqa');
  const e = expected['llama-gqa'];
  const out = await model.generate(e.greedy_prompt, { maxNewTokens: e.greedy.length, greedy: true, eosId: null });
  assert.deepEqual(out, e.greedy);
  const seq = [...e.greedy_prompt];
  for (const tok of out) {
    const logits = model.logits(tf.tensor2d([seq], undefined, 'int32'));
    const v = model.config.vocabSize;
    const last = values(logits).slice((seq.length - 1) * v, seq.length * v);
    assert.equal(tok, argmax(last));
    logits.dispose();
    seq.push(tok);
  }
  model.dispose();
});

void test('KV-cache generation equals recomputation without a cache (greedy and sampled)', async () => {
  const model = await loadLlama('llama-gqa');
  const prompt = [1, 17, 3, 40];
  for (const opts of [{ greedy: true }, { temperature: 0.8, topP: 0.9, seed: 7 }]) {
    const cached = await model.generate(prompt, { maxNewTokens: 12, eosId: null, ...opts });
    const plain = await model.generate(prompt, { maxNewTokens: 12, eosId: null, kvCache: false, ...opts });
    assert.deepEqual(cached, plain);
    assert.equal(cached.length, 12);
  }
  model.dispose();
});

void test('sampling is deterministic for a seed and depends on it; generation stops at EOS', async () => {
  const model = await loadLlama('llama-gqa');
  const a = await model.generate([1, 2, 3], { maxNewTokens: 10, seed: 1, eosId: null });
  const b = await model.generate([1, 2, 3], { maxNewTokens: 10, seed: 1, eosId: null });
  const c = await model.generate([1, 2, 3], { maxNewTokens: 10, seed: 2, eosId: null });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  const eos = a[3]!;
  const stopped = await model.generate([1, 2, 3], { maxNewTokens: 10, seed: 1, eosId: eos });
  assert.deepEqual(stopped, a.slice(0, a.indexOf(eos) + 1));
  model.dispose();
});

void test('lossSum has gradients through the custom ops and tensors do not leak across steps', async () => {
  const model = await loadLlama('llama-gqa');
  const norm = model.norms()[0]!.weight;
  norm.trainable = true;
  const ids = tf.tensor2d([[1, 5, 9, 3, 7]], undefined, 'int32');
  const labels = tf.tensor2d([[-100, -100, 9, 3, 7]], undefined, 'int32');
  const step = (): void => {
    const { value, grads } = tf.variableGrads(() => model.lossSum(ids, labels), [norm]);
    assert.ok(Number.isFinite(value.dataSync()[0]!));
    assert.ok(tf.tidy(() => tf.sum(tf.abs(grads[norm.name]!)).dataSync()[0]!) > 0);
    tf.dispose([value, ...Object.values(grads)]);
  };
  step();
  const before = tf.memory().numTensors;
  step();
  step();
  assert.equal(tf.memory().numTensors, before);
  // The embedding and tied head train too (full fine-tuning) without the missing wasm gather gradient.
  const tied = await loadLlama('llama-tied-sharded');
  const embed = tied.parameters().get('model.embed_tokens.weight')!;
  embed.trainable = true;
  const { value, grads } = tf.variableGrads(() => tied.lossSum(ids, labels), [embed]);
  assert.ok(tf.tidy(() => tf.sum(tf.abs(grads[embed.name]!)).dataSync()[0]!) > 0);
  tf.dispose([value, ...Object.values(grads), ids, labels]);
  model.dispose();
  tied.dispose();
});

void test('module paths are Hugging Face names with roles; lm_head is the head', async () => {
  const model = await loadLlama('llama-gqa');
  const roles = Object.fromEntries(model.linears().slice(0, 7).map((l) => [l.path, l.role]));
  assert.deepEqual(roles, {
    'model.layers.0.self_attn.q_proj': 'q', 'model.layers.0.self_attn.k_proj': 'k', 'model.layers.0.self_attn.v_proj': 'v',
    'model.layers.0.self_attn.o_proj': 'attn_out', 'model.layers.0.mlp.gate_proj': 'mlp_gate', 'model.layers.0.mlp.up_proj': 'mlp_in',
    'model.layers.0.mlp.down_proj': 'mlp_out',
  });
  assert.deepEqual(model.headPaths, ['lm_head']);
  assert.equal(model.linears().at(-1)!.path, 'lm_head');
  assert.equal(model.norms().length, 2 * 2 + 1);
  model.dispose();
});

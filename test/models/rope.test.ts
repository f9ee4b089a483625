// RoPE scaling (Llama 3.1+ `llama3`, `linear`, dynamic NTK) against an independent float64 torch
// reference of transformers' modeling_rope_utils.py formulas (scripts/make-rope-fixtures.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { initBackend, tf } from '../../src/backend/select.js';
import { loadModel } from '../../src/models/registry.js';
import { LlamaModel } from '../../src/models/llama.js';
import { llamaRope, parseLlamaConfig } from '../../src/models/llama-config.js';
import { ropeCosSin } from '../../src/nn/attention.js';
import { ropeInvFreq, ropeSeqLen } from '../../src/nn/rope.js';
import { UserError } from '../../src/errors.js';
import { FIXTURES, copyFixture, maxAbsDiff, values } from './helpers.js';

await initBackend('wasm');

interface TableCase {
  name: string;
  head_dim: number;
  rope_theta: number;
  rope_scaling: Record<string, unknown>;
  max_position_embeddings: number;
  seq_len: number;
  inv_freq: number[];
  cos: number[];
  sin: number[];
}
interface RopeExpected {
  tables: TableCase[];
  model: { input_ids: number[][]; logits_llama3: number[]; logits_dynamic: number[]; logits_plain: number[] };
}
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'rope.json'), 'utf8')) as RopeExpected;

const BASE = { model_type: 'llama', vocab_size: 64, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 1, num_attention_heads: 4 };

for (const e of expected.tables) {
  void test(`${e.name}: inv_freq and cos/sin equal transformers' formulas to 1e-5`, () => {
    const raw = { ...BASE, head_dim: e.head_dim, rope_theta: e.rope_theta, rope_scaling: e.rope_scaling, max_position_embeddings: e.max_position_embeddings };
    const c = parseLlamaConfig(raw, 'config.json');
    const rope = llamaRope(c);
    const inv = ropeInvFreq(c.headDim, rope, ropeSeqLen(rope, e.seq_len));
    assert.equal(inv.length, e.head_dim / 2);
    inv.forEach((x, i) => assert.ok(Math.abs(x - e.inv_freq[i]!) <= 1e-5 * e.inv_freq[i]!, `inv_freq[${i}] ${x} vs ${e.inv_freq[i]}`));
    const { cos, sin } = ropeCosSin(c.headDim, rope, e.seq_len);
    const dc = maxAbsDiff(cos, e.cos);
    const ds = maxAbsDiff(sin, e.sin);
    assert.ok(dc < 1e-5 && ds < 1e-5, `max |Δcos| ${dc}, |Δsin| ${ds}`);
  });
}

async function logitsOf(dir: string): Promise<{ model: LlamaModel; logits: Float32Array }> {
  const { model } = await loadModel(dir);
  assert.ok(model instanceof LlamaModel);
  const ids = tf.tensor2d(expected.model.input_ids, undefined, 'int32');
  const out = model.logits(ids);
  const logits = values(out);
  tf.dispose([ids, out]);
  return { model, logits };
}

void test('a llama3-scaled checkpoint with head_dim ≠ hidden/heads gives the reference logits (and plain RoPE would not)', async () => {
  const { model, logits } = await logitsOf(path.join(FIXTURES, 'llama-rope-llama3'));
  assert.equal(model.config.headDim, 16);
  assert.deepEqual(model.parameters().get('model.layers.0.self_attn.q_proj.weight')!.shape, [32, 64]);
  const diff = maxAbsDiff(logits, expected.model.logits_llama3);
  assert.ok(diff < 1e-4, `max |Δlogits| = ${diff}`);
  assert.ok(maxAbsDiff(expected.model.logits_plain, expected.model.logits_llama3) > 1e-2, 'the scaling changes these logits');
  assert.deepEqual(model.toHfConfig()['rope_scaling'], {
    rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32,
  });
  const prompt = [1, 17, 3, 40];
  assert.deepEqual(await model.generate(prompt, { maxNewTokens: 8, greedy: true, eosId: null }), await model.generate(prompt, { maxNewTokens: 8, greedy: true, eosId: null, kvCache: false }));
  model.dispose();
});

void test('dynamic NTK scaling past max_position_embeddings (old `type` key) gives the reference logits', async () => {
  const dir = copyFixture('llama-rope-llama3');
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, max_position_embeddings: 32, rope_scaling: { type: 'dynamic', factor: 2.0 } }));
  const { model, logits } = await logitsOf(dir);
  const diff = maxAbsDiff(logits, expected.model.logits_dynamic);
  assert.ok(diff < 1e-4, `max |Δlogits| = ${diff}`);
  model.dispose();
});

void test('an unknown rope type or a missing llama3 field is a UserError naming the field', () => {
  const parse = (rope_scaling: unknown): unknown => parseLlamaConfig({ ...BASE, rope_scaling }, 'config.json');
  assert.throws(() => parse({ rope_type: 'yarn', factor: 4 }), (e: unknown) => e instanceof UserError && /config\.json: 'rope_scaling' has rope_type "yarn", which is not supported/.test(e.message));
  assert.throws(() => parse({ type: 'longrope' }), /'rope_scaling' has type "longrope"/);
  assert.throws(() => parse({ rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 }), /'rope_scaling\.original_max_position_embeddings' must be a number/);
  assert.throws(() => parse({ rope_type: 'linear' }), /'rope_scaling\.factor' must be a number/);
  assert.equal(parseLlamaConfig({ ...BASE, rope_scaling: { rope_type: 'default' } }, 'config.json').ropeScaling, null);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { initBackend, tf } from '../../src/backend/select.js';
import { openSafetensors, readSafetensors, writeSafetensors, type TensorToWrite } from '../../src/checkpoint/safetensors.js';
import { UserError } from '../../src/errors.js';
import { saveHfModel, type HfModel } from '../../src/models/hf.js';
import { countParams } from '../../src/models/layout.js';
import { LlamaModel } from '../../src/models/llama.js';
import { describeModel, loadModel } from '../../src/models/registry.js';
import { copyFixture, FIXTURES, expected, maxAbsDiff, tmpDir, values } from './helpers.js';

await initBackend('wasm');

/** Rewrites DIR/model.safetensors through `edit`. */
function editWeights(dir: string, edit: (t: Map<string, TensorToWrite>) => void): void {
  const file = path.join(dir, 'model.safetensors');
  const { tensors } = readSafetensors(file);
  const out = new Map<string, TensorToWrite>();
  for (const [k, v] of tensors) out.set(k, { dtype: 'F32', shape: v.shape, data: v.data as Float32Array });
  edit(out);
  writeSafetensors(file, Object.fromEntries(out));
}

async function rejects(dir: string, pattern: RegExp): Promise<void> {
  await assert.rejects(loadModel(dir), (err: unknown) => err instanceof UserError && pattern.test(err.message));
}

void test('strict loading: an unexpected tensor is a UserError naming it', async () => {
  const dir = copyFixture('llama-gqa');
  editWeights(dir, (t) => t.set('model.layers.0.mlp.extra.weight', { dtype: 'F32', shape: [2], data: new Float32Array(2) }));
  await rejects(dir, /unexpected tensor 'model\.layers\.0\.mlp\.extra\.weight'/);
});

void test('strict loading: a missing tensor is a UserError naming it', async () => {
  const dir = copyFixture('llama-gqa');
  editWeights(dir, (t) => t.delete('model.layers.1.self_attn.k_proj.weight'));
  await rejects(dir, /missing tensor 'model\.layers\.1\.self_attn\.k_proj\.weight'/);
});

void test('strict loading: a shape mismatch is a UserError naming the tensor and both shapes', async () => {
  const dir = copyFixture('llama-gqa');
  editWeights(dir, (t) => t.set('model.norm.weight', { dtype: 'F32', shape: [31], data: new Float32Array(31) }));
  await rejects(dir, /'model\.norm\.weight' has shape \[31\], the config needs \[32\]/);
});

void test('ignored tensors: rotary_emb.inv_freq (llama-gqa fixture) and the ViT pooler load without error', async () => {
  const src = openSafetensors(path.join(FIXTURES, 'llama-gqa', 'model.safetensors'));
  assert.ok(src.tensors.has('model.layers.0.self_attn.rotary_emb.inv_freq'));
  src.close();
  const l = await loadModel(path.join(FIXTURES, 'llama-gqa'));
  assert.ok(![...l.model.parameters().keys()].some((k) => k.includes('inv_freq')));
  const v = await loadModel(path.join(FIXTURES, 'vit'));
  assert.ok(![...v.model.parameters().keys()].some((k) => k.includes('pooler')));
  l.model.dispose();
  v.model.dispose();
});

void test('config errors name the file and key; unknown directories and presets are UserErrors', async () => {
  const dir = copyFixture('llama-gqa');
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, rope_scaling: { rope_type: 'yarn', factor: 2 } }));
  await rejects(dir, /config\.json: 'rope_scaling'/);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, num_key_value_heads: 3 }));
  await rejects(dir, /'num_key_value_heads'/);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, model_type: 'gpt2' }));
  await rejects(dir, /model_type "gpt2" is not supported/);
  await rejects('no-such-model', /neither a directory with config\.json nor a preset/);
});

for (const [fixture, dtype] of [['llama-tied-sharded', 'F32'], ['llama-gqa', 'F16'], ['vit', 'F32']] as const) {
  void test(`saveHfModel -> load round trip (${fixture}, ${dtype})`, async () => {
    const a = await loadModel(path.join(FIXTURES, fixture));
    const out = tmpDir();
    await saveHfModel(a.model as HfModel, out, { dtype });
    const b = await loadModel(out);
    const header = readSafetensors(path.join(out, 'model.safetensors')).tensors;
    if (fixture === 'llama-tied-sharded') assert.ok(!header.has('lm_head.weight'), 'a tied head is not written');
    for (const [name, v] of a.model.parameters()) {
      const w = b.model.parameters().get(name);
      assert.ok(w, name);
      assert.deepEqual(w.shape, v.shape, name);
      assert.ok(maxAbsDiff(values(v), values(w)) <= (dtype === 'F16' ? 2e-3 * Math.max(1, ...Array.from(values(v), Math.abs)) : 0), name);
    }
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(cfg.torch_dtype, dtype === 'F32' ? 'float32' : 'float16');
    a.model.dispose();
    b.model.dispose();
  });
}

void test('saved F32 LLaMA reproduces the reference logits', async () => {
  const a = await loadModel(path.join(FIXTURES, 'llama-f16'));
  const out = tmpDir();
  await saveHfModel(a.model as HfModel, out);
  const b = await loadModel(out);
  assert.ok(b.model instanceof LlamaModel);
  const e = expected['llama-f16'];
  const logits = b.model.logits(tf.tensor2d(e.input_ids, undefined, 'int32'));
  assert.ok(maxAbsDiff(values(logits), e.logits) < 1e-4);
  a.model.dispose();
  b.model.dispose();
});

void test('presets load seeded (same seed, same weights) and describeModel matches the built model', async () => {
  for (const name of ['tiny-llama', 'tiny-vit']) {
    const a = await loadModel(name, { seed: 3 });
    const b = await loadModel(name, { seed: 3 });
    const c = await loadModel(name, { seed: 4 });
    const d = await describeModel(name);
    const first = [...a.model.parameters().keys()].find((k) => k.endsWith('q_proj.weight') || k.endsWith('query.weight'))!;
    const va = values(a.model.parameters().get(first)!);
    assert.deepEqual(va, values(b.model.parameters().get(first)!));
    assert.notDeepEqual(va, values(c.model.parameters().get(first)!));
    const total = [...a.model.parameters().values()].reduce((n, v) => n + v.size, 0);
    assert.equal(d.totalParams, total, name);
    assert.deepEqual(d.linears.map((l) => l.path), a.model.linears().map((l) => l.path));
    assert.deepEqual(d.norms.map((l) => l.path), a.model.norms().map((l) => l.path));
    assert.deepEqual(d.headPaths, [...a.model.headPaths]);
    for (const m of [a, b, c]) m.model.dispose();
  }
});

void test('paper-size presets are described from the config alone, with the published parameter counts', async () => {
  const l7 = await describeModel('llama2-7b');
  assert.equal(l7.totalParams, 6_738_415_616); // LLaMA-2-7B
  assert.equal(l7.linears.filter((l) => l.role !== 'head').reduce((n, l) => n + l.outFeatures, 0), 1_359_872); // 1LoRA's count (docs/architecture.md#the-method)
  const l13 = await describeModel('llama2-13b');
  assert.equal(l13.totalParams, 13_015_864_320);
  const vit = await describeModel('vit-b16', { numLabels: 10 });
  assert.equal(vit.linears.filter((l) => l.role !== 'head').reduce((n, l) => n + l.outFeatures, 0), 82_944); // paper Table S9 ÷ 4
  assert.equal(vit.totalParams - 768 * 10 - 10, 85_798_656); // ViTModel without pooler
  const dir = await describeModel(path.join(FIXTURES, 'llama-gqa'));
  assert.equal(dir.family, 'llama');
  assert.equal(countParams({ linears: dir.linears, norms: dir.norms, extras: [], headPaths: [] }) + 64 * 32, dir.totalParams);
});

void test('a quantized checkpoint (bitsandbytes 8-bit: int8 weights + .SCB + .weight_format) is one UserError saying so', async () => {
  // As transformers saves a model loaded with BitsAndBytesConfig(load_in_8bit=True): each quantized
  // linear has an I8 weight, its per-row scales `SCB` and a `weight_format` byte.
  const dir = copyFixture('llama-gqa');
  const file = path.join(dir, 'model.safetensors');
  const { tensors } = readSafetensors(file);
  const out: Record<string, TensorToWrite> = {};
  for (const [k, v] of tensors) {
    const m = /^(.*\.(q|k|v|o|gate|up|down)_proj)\.weight$/.exec(k);
    if (!m) {
      out[k] = { dtype: 'F32', shape: v.shape, data: v.data as Float32Array };
      continue;
    }
    out[k] = { dtype: 'I8', shape: v.shape, data: new Int8Array(v.data.length) };
    out[`${m[1]}.SCB`] = { dtype: 'F32', shape: [v.shape[0]!], data: new Float32Array(v.shape[0]!) };
    out[`${m[1]}.weight_format`] = { dtype: 'U8', shape: [], data: new Uint8Array(1) };
  }
  writeSafetensors(file, out);
  await rejects(dir, /model\.safetensors: tensor '.*\.(SCB|weight_format)' belongs to a quantized checkpoint .*quantized weights are not supported/);
  const cfgFile = path.join(dir, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, quantization_config: { quant_method: 'bitsandbytes', load_in_8bit: true, load_in_4bit: false, llm_int8_threshold: 6 } }));
  await rejects(dir, /config\.json: 'quantization_config' is set \(quant_method "bitsandbytes", load_in_8bit true\); quantized weights are not supported/);
});

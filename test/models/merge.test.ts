// `onelora merge` output as transformers' save_pretrained writes it: the base's dtype unless
// --dtype says otherwise, shards + model.safetensors.index.json above --max-shard-size, and an
// --out that already holds something refused (exit 2) unless --overwrite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { initBackend, tf } from '../../src/backend/select.js';
import { openSafetensors } from '../../src/checkpoint/safetensors.js';
import { registerMerge } from '../../src/cli/commands/merge.js';
import { LlamaModel } from '../../src/models/llama.js';
import { loadModel } from '../../src/models/registry.js';
import { saveAdapter } from '../../src/peft/adapter-io.js';
import { applyMethod } from '../../src/peft/apply.js';
import { FIXTURES, copyFixture, maxAbsDiff, runCommands, tmpDir, values } from './helpers.js';

await initBackend('wasm');

const merge = (...args: string[]) => runCommands([registerMerge], 'merge', ...args, '--backend', 'wasm');

/** A 1LoRA adapter with non-zero b on `dir`'s model. */
async function adapterFor(dir: string): Promise<string> {
  const model = (await loadModel(dir)).model as LlamaModel;
  const state = applyMethod(model, '1lora');
  for (const [i, v] of [...state.trainable.values()].entries()) v.assign(tf.randomNormal(v.shape, 0, 0.3, 'float32', i + 1));
  const out = tmpDir();
  await saveAdapter(out, state, { baseModel: dir });
  state.dispose();
  model.dispose();
  return out;
}

function dtypes(file: string): Set<string> {
  const src = openSafetensors(file);
  try {
    return new Set([...src.tensors.values()].map((t) => t.dtype));
  } finally {
    src.close();
  }
}

const configOf = (dir: string): Record<string, unknown> => JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
const ids = (): tf.Tensor2D => tf.tensor2d([[1, 5, 9, 3, 7, 11]], undefined, 'int32');

void test('merge writes the base dtype by default (the files\' F16, config torch_dtype bfloat16) and --dtype when given', async () => {
  const f16 = path.join(FIXTURES, 'llama-f16');
  const out16 = path.join(tmpDir(), 'm');
  const r = await merge('--model', f16, '--adapter', await adapterFor(f16), '--out', out16);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(dtypes(path.join(out16, 'model.safetensors')), new Set(['F16']));
  assert.equal(configOf(out16).torch_dtype, 'float16');

  const bf = copyFixture('llama-gqa');
  fs.writeFileSync(path.join(bf, 'config.json'), JSON.stringify({ ...configOf(bf), torch_dtype: 'bfloat16' }));
  const adapter = await adapterFor(bf);
  const outBf = path.join(tmpDir(), 'm');
  assert.equal((await merge('--model', bf, '--adapter', adapter, '--out', outBf)).code, 0);
  assert.deepEqual(dtypes(path.join(outBf, 'model.safetensors')), new Set(['BF16']));
  assert.equal(configOf(outBf).torch_dtype, 'bfloat16');

  const out32 = path.join(tmpDir(), 'm');
  assert.equal((await merge('--model', bf, '--adapter', adapter, '--out', out32, '--dtype', 'f32')).code, 0);
  assert.deepEqual(dtypes(path.join(out32, 'model.safetensors')), new Set(['F32']));
  assert.equal(configOf(out32).torch_dtype, 'float32');
  // BF16 keeps 8 bits of mantissa: the logits move by rounding only.
  const a = values(((await loadModel(out32)).model as LlamaModel).logits(ids()));
  const b = values(((await loadModel(outBf)).model as LlamaModel).logits(ids()));
  assert.ok(maxAbsDiff(a, b) < 0.1 && maxAbsDiff(a, b) > 0);

  const bad = await merge('--model', bf, '--adapter', adapter, '--out', path.join(tmpDir(), 'm'), '--dtype', 'f64');
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--dtype: 'f64' is not one of f32, f16, bf16/);
});

void test('--max-shard-size shards as save_pretrained does: model-0000N-of-0000M + index with total_size and weight_map', async () => {
  const dir = path.join(FIXTURES, 'llama-gqa');
  const adapter = await adapterFor(dir);
  const single = path.join(tmpDir(), 'm');
  assert.equal((await merge('--model', dir, '--adapter', adapter, '--out', single, '--dtype', 'f32')).code, 0);
  assert.ok(fs.existsSync(path.join(single, 'model.safetensors')) && !fs.existsSync(path.join(single, 'model.safetensors.index.json')));
  const out = path.join(tmpDir(), 'm');
  const limit = 20_000; // '20KB': decimal kilobytes, as transformers' convert_file_size_to_int reads them
  const r = await merge('--model', dir, '--adapter', adapter, '--out', out, '--dtype', 'f32', '--max-shard-size', '20KB');
  assert.equal(r.code, 0, r.err);
  const index = JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
  const shards = [...new Set(Object.values(index.weight_map))].sort();
  assert.ok(shards.length >= 2);
  assert.deepEqual(shards, shards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`));
  assert.deepEqual(fs.readdirSync(out).filter((f) => f.startsWith('model')).sort(), [...shards, 'model.safetensors.index.json'].sort());
  let total = 0;
  for (const shard of shards) {
    const src = openSafetensors(path.join(out, shard));
    const sizes = [...src.tensors.values()].map((t) => t.end - t.begin);
    src.close();
    const bytes = sizes.reduce((a, b) => a + b, 0);
    assert.ok(bytes <= limit || sizes.length === 1, `${shard}: ${bytes} bytes in ${sizes.length} tensors`);
    total += bytes;
  }
  assert.equal(index.metadata.total_size, total);
  const want = openSafetensors(path.join(single, 'model.safetensors'));
  assert.deepEqual(Object.keys(index.weight_map).sort(), [...want.tensors.keys()].sort());
  want.close();
  assert.ok(maxAbsDiff(values(((await loadModel(out)).model as LlamaModel).logits(ids())), values(((await loadModel(single)).model as LlamaModel).logits(ids()))) === 0);
  const bad = await merge('--model', dir, '--adapter', adapter, '--out', path.join(tmpDir(), 'm'), '--max-shard-size', 'lots');
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--max-shard-size: 'lots' is not a size/);
});

void test('merge --out into a non-empty directory is exit 2 naming it and --overwrite, and touches nothing; --overwrite replaces the model files', async () => {
  const dir = path.join(FIXTURES, 'llama-gqa');
  const adapter = await adapterFor(dir);
  const out = tmpDir();
  fs.writeFileSync(path.join(out, 'notes.txt'), 'mine');
  const r = await merge('--model', dir, '--adapter', adapter, '--out', out);
  assert.equal(r.code, 2);
  assert.ok(r.err.includes(out), r.err);
  assert.match(r.err, /not empty.*--overwrite/);
  assert.deepEqual(fs.readdirSync(out), ['notes.txt']);
  assert.equal((await merge('--model', dir, '--adapter', adapter, '--out', out, '--overwrite', '--max-shard-size', '20KB')).code, 0);
  assert.ok(fs.existsSync(path.join(out, 'model.safetensors.index.json')));
  // A second save without shards removes the first one's shards and index, as save_pretrained does.
  assert.equal((await merge('--model', dir, '--adapter', adapter, '--out', out, '--overwrite')).code, 0);
  assert.deepEqual(fs.readdirSync(out).sort(), ['config.json', 'model.safetensors', 'notes.txt']);
  assert.equal(fs.readFileSync(path.join(out, 'notes.txt'), 'utf8'), 'mine');
  const empty = tmpDir();
  assert.equal((await merge('--model', dir, '--adapter', adapter, '--out', empty)).code, 0, 'an empty directory is fine');
});

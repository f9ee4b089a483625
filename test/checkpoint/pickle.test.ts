// torch.save checkpoints against real files from scripts/make-pickle-fixtures.py (torch 1.13): every
// tensor of a state dict (F32/F16/BF16/I64, views, shared storages, a Parameter, pickle protocols 2
// and 4, deflated and zip64 archives) reads back as torch.load reads it (tensors.json); code in a
// pickle is refused before it runs; the legacy format, a non-tensor value and a big-endian archive
// are refused saying what was found; and model, adapter and DiT directories holding .bin/.pt give
// what their safetensors twins (or the torch reference) give.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import zlib from 'node:zlib';
import { initBackend, tf } from '../../src/backend/select.js';
import { openSafetensorsDir, readSafetensors } from '../../src/checkpoint/safetensors.js';
import { openTorchFile } from '../../src/checkpoint/torch-file.js';
import { loadDit } from '../../src/models/dit-load.js';
import type { LlamaModel } from '../../src/models/llama.js';
import { loadModel } from '../../src/models/registry.js';
import { loadAdapter } from '../../src/peft/adapter-io.js';
import { throwsUser, tmpDir } from '../helpers.js';
import { expected, maxAbsDiff } from '../models/helpers.js';

await initBackend('wasm');

const FIX = path.join(import.meta.dirname, '..', 'fixtures');
const PICKLE = path.join(FIX, 'pickle');
const PAYLOAD_MARKER = 'onelora-pickle-payload-ran';

interface Want {
  dtype: string;
  shape: number[];
  values: number[];
}
const want = JSON.parse(fs.readFileSync(path.join(PICKLE, 'tensors.json'), 'utf8')) as Record<string, Want>;

for (const file of ['tensors.pt', 'tensors-proto4.pt', 'deflated.pt', 'zip64.pt']) {
  void test(`${file}: every tensor reads back as torch.load gives it (dtype, shape, values)`, () => {
    const src = openTorchFile(path.join(PICKLE, file));
    try {
      assert.deepEqual([...src.tensors.keys()], Object.keys(want));
      for (const [name, w] of Object.entries(want)) {
        assert.equal(src.tensors.get(name)!.dtype, w.dtype, name);
        const t = src.read(name);
        assert.deepEqual([...t.shape], w.shape, name);
        assert.deepEqual(Array.from(t.data), w.values, name);
      }
    } finally {
      src.close();
    }
  });
}

void test('a pickle calling os.system is refused naming posix.system and the file, and the payload never runs', async () => {
  const file = path.join(PICKLE, 'malicious.pt');
  // The payload runs `touch onelora-pickle-payload-ran` in the working directory: make that a fresh one.
  const cwd = process.cwd();
  const work = tmpDir('pickle');
  process.chdir(work);
  try {
    throwsUser(() => openTorchFile(file), file, "'posix.system'", 'not allowed');
    // The same file as a model's pytorch_model.bin, through the model loader.
    const dir = tmpDir('pickle');
    fs.copyFileSync(path.join(PICKLE, 'llama-f16', 'config.json'), path.join(dir, 'config.json'));
    fs.copyFileSync(file, path.join(dir, 'pytorch_model.bin'));
    await assert.rejects(loadModel(dir), /pytorch_model\.bin: the pickle refers to 'posix\.system'/);
  } finally {
    process.chdir(cwd);
  }
  assert.equal(fs.existsSync(path.join(work, PAYLOAD_MARKER)), false, 'the pickled os.system payload ran');
});

void test('refusals say what was found and how to convert: legacy format, non-tensor values, big-endian, not a checkpoint', () => {
  throwsUser(() => openTorchFile(path.join(PICKLE, 'legacy.pt')), 'legacy.pt', 'legacy (pre-1.6, non-zip) torch.save format', 'save_file(');
  throwsUser(() => openTorchFile(path.join(PICKLE, 'not-a-state-dict.pt')), "'step' holds a int, not a tensor", 'save_file(');
  throwsUser(() => openTorchFile(path.join(PICKLE, 'big-endian.pt')), 'big-endian', 'little-endian');
  const dir = tmpDir('pickle');
  fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), 'not a checkpoint at all');
  throwsUser(() => openSafetensorsDir(dir), 'pytorch_model.bin', 'neither a torch.save zip archive nor safetensors');
  throwsUser(() => openSafetensorsDir(tmpDir('pickle')), 'no weights', 'model.safetensors', 'pytorch_model.bin.index.json');
});

function llamaLogits(model: LlamaModel, ids: number[][]): Float32Array {
  const x = tf.tensor2d(ids, undefined, 'int32');
  const y = model.logits(x);
  const out = y.dataSync() as Float32Array;
  tf.dispose([x, y]);
  return out;
}

for (const name of ['llama-f16', 'llama-tied-sharded'] as const) {
  void test(`${name} saved by torch.save (pytorch_model.bin${name.includes('sharded') ? ' shards + index' : ''}) gives its safetensors twin's logits`, async () => {
    const bin = await loadModel(path.join(PICKLE, name));
    const st = await loadModel(path.join(FIX, 'models', name));
    assert.equal(bin.family, 'llama');
    assert.equal(st.family, 'llama');
    const e = expected[name];
    const a = llamaLogits(bin.model as LlamaModel, e.input_ids);
    assert.deepEqual(a, llamaLogits(st.model as LlamaModel, e.input_ids));
    assert.ok(maxAbsDiff(a, e.logits) < 1e-4, 'against the torch reference');
    bin.model.dispose();
    st.model.dispose();
  });
}

void test('an older PEFT adapter_model.bin loads as its adapter_model.safetensors twin does', async () => {
  const ids = expected['llama-gqa'].input_ids;
  const run = async (adapter: string): Promise<{ tensors: Map<string, number[]>; logits: Float32Array }> => {
    const base = await loadModel(path.join(FIX, 'models', 'llama-gqa'));
    const model = base.model as LlamaModel;
    const state = loadAdapter(path.join(PICKLE, adapter), model);
    const tensors = new Map([...state.trainable].map(([k, v]) => [k, Array.from(v.dataSync())]));
    const logits = llamaLogits(model, ids);
    state.dispose();
    model.dispose();
    return { tensors, logits };
  };
  const bin = await run('lora-bin');
  const st = await run('lora-safetensors');
  assert.equal(bin.tensors.size, 8);
  assert.deepEqual(bin.tensors, st.tensors);
  assert.deepEqual(bin.logits, st.logits);
  assert.ok(maxAbsDiff(bin.logits, expected['llama-gqa'].logits) > 1e-3, 'the adapter changes the output');
});

void test("a DiT train.py checkpoint (.pt with model/ema/opt/args) loads its 'ema' weights: the torch reference's output", () => {
  const dir = tmpDir('pickle');
  fs.writeFileSync(path.join(dir, 'dit-train.pt'), zlib.gunzipSync(fs.readFileSync(path.join(PICKLE, 'dit-train.pt.gz'))));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'dit', num_heads: 4 }));
  const model = loadDit(dir);
  const golden = readSafetensors(path.join(FIX, 'dit', 'golden.safetensors')).tensors;
  const g = (n: string): Float32Array | Int32Array => golden.get(n)!.data as Float32Array | Int32Array;
  const x = tf.tensor4d(g('x') as Float32Array, [3, 4, 8, 8]);
  const out = model.forward(x, g('t'), g('y'));
  const d = maxAbsDiff(out.dataSync() as Float32Array, g('out_orig'));
  tf.dispose([x, out]);
  model.dispose();
  assert.ok(d < 1e-4, `max |diff| ${d}`);
});

test('a .safetensors file whose header length begins with byte 0x80 (a pickle PROTO byte) still opens as safetensors', () => {
  const json = Buffer.from('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'.padEnd(128, ' '));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const file = path.join(tmpDir('st80'), 'adapter_model.safetensors');
  fs.writeFileSync(file, Buffer.concat([len, json, Buffer.from(new Float32Array([1.5]).buffer)]));
  assert.equal(fs.readFileSync(file)[0], 0x80);
  const src = openSafetensorsDir(file);
  try {
    assert.deepEqual(Array.from(src.read('a').data), [1.5]);
  } finally {
    src.close();
  }
});

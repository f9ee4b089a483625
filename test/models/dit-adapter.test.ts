// `onelora merge --adapter-only --layout diffusers`: a DiT adapter written in diffusers' module
// names. Every renamed tensor sits on a module of scripts/make-dit-fixtures.py's independent
// diffusers-layout checkpoint with that module's shapes, and the adapter read back onto that
// checkpoint computes what the original adapter computes on the original-layout model.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import zlib from 'node:zlib';
import { initBackend, tf } from '../../src/backend/select.js';
import { openSafetensors, readSafetensors } from '../../src/checkpoint/safetensors.js';
import { registerMerge } from '../../src/cli/commands/merge.js';
import { ditAdapterTranslation } from '../../src/models/dit-adapter.js';
import { adapterDitClasses, DIT_CLASS_TABLE, loadDit } from '../../src/models/dit-load.js';
import { Rng } from '../../src/nn/rng.js';
import { loadAdapter, saveAdapter } from '../../src/peft/adapter-io.js';
import { applyMethod } from '../../src/peft/apply.js';
import { ditForward as forward, maxAbsDiff, runCommands, tmpDir } from './helpers.js';

await initBackend('wasm');
const FIX = path.join(path.resolve(import.meta.dirname, '../..'), 'test', 'fixtures', 'dit');
const dir = tmpDir();
const orig = path.join(dir, 'orig');
const diff = path.join(dir, 'diffusers');
fs.mkdirSync(orig);
fs.mkdirSync(diff);
fs.writeFileSync(path.join(orig, 'model.safetensors'), zlib.gunzipSync(fs.readFileSync(path.join(FIX, 'orig-f32.safetensors.gz'))));
fs.writeFileSync(path.join(orig, 'config.json'), JSON.stringify({ model_type: 'dit', num_heads: 4 }));
fs.writeFileSync(path.join(diff, 'diffusion_pytorch_model.safetensors'), zlib.gunzipSync(fs.readFileSync(path.join(FIX, 'diffusers-f16', 'diffusion_pytorch_model.safetensors.gz'))));
fs.copyFileSync(path.join(FIX, 'diffusers-f16', 'config.json'), path.join(diff, 'config.json'));
const ref = readSafetensors(path.join(diff, 'diffusion_pytorch_model.safetensors')).tensors;
// Both checkpoints in facebookresearch's timestep convention, so that they are one network.
const SAME = { timestepShift: 0 as const, mlpNormEps: 1e-6 };

const run = async (...args: string[]) => {
  await new Promise((r) => setTimeout(r, 100));
  return runCommands([registerMerge], ...args);
};

for (const method of ['1lora', 'lora:r=2', 'dora:r=2']) {
  test(`${method}: exported in diffusers names, on the fixture's modules and shapes, same forward on the diffusers checkpoint`, async () => {
    const name = method.replace(/[:=]/g, '-');
    const adapter = path.join(dir, `${name}-adapter`);
    const out = path.join(dir, `${name}-diffusers`);
    // 6 classes on the 10-class base: the adapter carries its own class table (modules_to_save).
    const model = loadDit(orig, { numClasses: 6, seed: 3, ...SAME });
    const peft = applyMethod(model, method, { headParams: [DIT_CLASS_TABLE] });
    let k = 0;
    for (const v of peft.trainable.values()) {
      const r = Rng.from(23, k++);
      tf.tidy(() => v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => r.uniform(-0.1, 0.1)), v.shape)));
    }
    const want = await forward(model, 6);
    await saveAdapter(adapter, peft, { baseModel: orig, taskType: 'diffusion' });
    peft.dispose();
    model.dispose();

    const r = await run('merge', '--model', orig, '--adapter', adapter, '--out', out, '--adapter-only', '--layout', 'diffusers', '--json');
    assert.equal(r.code, 0, r.err);
    const file = openSafetensors(path.join(out, 'adapter_model.safetensors'));
    const keys = [...file.tensors.keys()];
    assert.ok(keys.some((key) => key.includes('.attn1.to_v.')) && keys.some((key) => key.includes('transformer_blocks.1.norm1.emb.class_embedder.')));
    for (const key of keys) {
      const m = /^base_model\.model\.(.+?)\.(weight|onelora_b|lora_A\.weight|lora_B\.weight|lora_magnitude_vector)$/.exec(key);
      assert.ok(m, key);
      const w = ref.get(`${m[1]}.weight`);
      assert.ok(w, `${key}: no module ${m[1]} in the diffusers checkpoint`);
      const shape = file.tensors.get(key)!.shape;
      if (m[2] === 'weight') assert.deepEqual(shape.slice(1), w.shape.slice(1), key); // the class table: another row count
      else if (m[2] === 'lora_A.weight') assert.equal(shape[1], w.shape[1], key);
      else assert.equal(shape[0], w.shape[0], key);
    }
    file.close();
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8')) as { target_modules: string[] };
    assert.ok(cfg.target_modules.includes('transformer_blocks.0.attn1.to_q') && cfg.target_modules.every((t) => ref.has(`${t}.weight`)), JSON.stringify(cfg.target_modules));

    // Read back onto the diffusers-layout checkpoint: the same network.
    const back = loadDit(diff, { numClasses: adapterDitClasses(out), ...SAME });
    assert.equal(back.config.numClasses, 6);
    const state = loadAdapter(out, back, ditAdapterTranslation(back.config.depth));
    assert.ok(maxAbsDiff(await forward(back, 6), want) < 1e-5, 'diffusers-named adapter on the diffusers checkpoint ≡ original adapter on the original');
    state.dispose();
    back.dispose();
  });
}

test('an adapter in diffusers names merges into the diffusers checkpoint; VeRA on the fused qkv is refused', async () => {
  const out = path.join(dir, '1lora-diffusers');
  const merged = path.join(dir, 'merged');
  const r = await run('merge', '--model', diff, '--adapter', out, '--out', merged, '--dtype', 'f32', '--json'); // the base is F16
  assert.equal(r.code, 0, r.err);
  const a = loadDit(merged, SAME);
  const model = loadDit(orig, { numClasses: 6, ...SAME });
  const peft = loadAdapter(path.join(dir, '1lora-adapter'), model);
  assert.ok(maxAbsDiff(await forward(a, 6), await forward(model, 6)) < 1e-4);
  peft.dispose();
  model.dispose();
  a.dispose();

  const vm = loadDit(orig, SAME);
  const vera = applyMethod(vm, 'vera:r=4', {});
  await saveAdapter(path.join(dir, 'vera'), vera);
  vera.dispose();
  vm.dispose();
  const bad = await run('merge', '--model', orig, '--adapter', path.join(dir, 'vera'), '--out', path.join(dir, 'vera-d'), '--adapter-only', '--layout', 'diffusers');
  assert.equal(bad.code, 2);
  assert.match(bad.err, /vera/);
});

// The AutoencoderKL against scripts/make-vae-fixtures.py (an independent float64 torch VAE, no
// diffusers): encoder mean/log-variance and decoder output within 1e-4, for the legacy attention
// names in F32 and the current names in F16; the host helpers' scaling, seeded draws and slicing;
// the strict loader's errors; tensor lifetimes.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { initBackend, tf } from '../../src/backend/select.js';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { UserError } from '../../src/errors.js';
import { loadVae } from '../../src/models/vae-load.js';
import { decodeLatents, encodeImages } from '../../src/models/vae-run.js';
import { maxAbsDiff, tmpDir } from './helpers.js';

await initBackend('wasm');
const FIX = path.join(import.meta.dirname, '..', 'fixtures', 'vae');
const golden = readSafetensors(path.join(FIX, 'golden.safetensors')).tensors;
const g = (name: string): Float32Array => golden.get(name)!.data as Float32Array;
const shapeOf = (name: string): number[] => [...golden.get(name)!.shape];
const TOL = 1e-4;
const [N, , H, W] = shapeOf('pixels') as [number, number, number, number];
const [, C, h, w] = shapeOf('mean') as [number, number, number, number];

/** [N, C, H, W] golden -> NHWC tensor. */
const nhwc = (name: string): tf.Tensor4D => tf.tidy(() => tf.transpose(tf.tensor4d(g(name), shapeOf(name) as [number, number, number, number]), [0, 2, 3, 1]));
const toNchw = async (t: tf.Tensor4D): Promise<Float32Array> => {
  const y = tf.transpose(t, [0, 3, 1, 2]);
  const v = Float32Array.from(await y.data());
  y.dispose();
  return v;
};

for (const variant of ['legacy-f32', 'current-f16']) {
  test(`${variant}: encode and decode equal the float64 torch reference`, async () => {
    const vae = loadVae(path.join(FIX, variant));
    const before = tf.memory().numTensors;
    const x = tf.tidy(() => tf.sub(tf.div(nhwc('pixels'), 127.5), 1) as tf.Tensor4D);
    const { mean, logvar } = vae.encode(x);
    const dm = maxAbsDiff(await toNchw(mean), g('mean'));
    const dl = maxAbsDiff(await toNchw(logvar), g('logvar'));
    const z = nhwc('z');
    const y = vae.decode(z);
    const dd = maxAbsDiff(await toNchw(y), g('decoded'));
    tf.dispose([x, mean, logvar, z, y]);
    console.log(`${variant}: max |Δ| mean ${dm.toExponential(2)}, logvar ${dl.toExponential(2)}, decoded ${dd.toExponential(2)}`);
    assert.ok(dm < TOL && dl < TOL && dd < TOL, `mean ${dm}, logvar ${dl}, decoded ${dd}`);
    assert.equal(tf.memory().numTensors, before, 'encode/decode leave no tensors behind');
    vae.dispose();
  });
}

test('host helpers: scaling, seeded draws, slicing, 8-bit output', async () => {
  const vae = loadVae(path.join(FIX, 'legacy-f32'));
  const s = vae.config.scalingFactor;
  // pixels NCHW -> HWC uint8
  const px = g('pixels');
  const hwc = new Uint8Array(N * H * W * 3);
  for (let n = 0; n < N; n++) for (let c = 0; c < 3; c++) for (let i = 0; i < H * W; i++) hwc[(n * H * W + i) * 3 + c] = px[(n * 3 + c) * H * W + i]!;
  const mean = await encodeImages(vae, hwc, N, H, W, { mode: 'mean', seed: 1, slice: 2 });
  assert.ok(maxAbsDiff(mean, g('mean').map((v) => v * s)) < TOL * s);
  const a = await encodeImages(vae, hwc, N, H, W, { mode: 'sample', seed: 3, slice: 1 });
  const b = await encodeImages(vae, hwc, N, H, W, { mode: 'sample', seed: 3, slice: 2 });
  const c = await encodeImages(vae, hwc.subarray(H * W * 3), 1, H, W, { mode: 'sample', seed: 3, firstIndex: 1 });
  assert.deepEqual(a, b, 'a draw does not depend on the slice size');
  assert.deepEqual(a.subarray(C * h * w), c, 'nor on where the batch starts');
  // The draw is mean + σ·ε with a standard normal ε: its standardised residual has mean ≈ 0, sd ≈ 1.
  const lv = g('logvar');
  const eps = Array.from(a, (v, i) => (v / s - g('mean')[i]!) / Math.exp(0.5 * lv[i]!));
  const mu = eps.reduce((p, q) => p + q, 0) / eps.length;
  const sd = Math.sqrt(eps.reduce((p, q) => p + (q - mu) ** 2, 0) / eps.length);
  assert.ok(Math.abs(mu) < 0.2 && Math.abs(sd - 1) < 0.2, `ε mean ${mu}, sd ${sd}`);
  const img = await decodeLatents(vae, g('z').map((v) => v * s), N, h, w, 1);
  const want = g('decoded');
  let worst = 0;
  for (let n = 0; n < N; n++) {
    for (let c2 = 0; c2 < 3; c2++) {
      for (let i = 0; i < H * W; i++) {
        const v = Math.min(255, Math.max(0, Math.floor(((Math.min(1, Math.max(-1, want[(n * 3 + c2) * H * W + i]!)) + 1) / 2) * 255 + 0.5)));
        worst = Math.max(worst, Math.abs(v - img[(n * H * W + i) * 3 + c2]!));
      }
    }
  }
  assert.ok(worst <= 1, `8-bit output differs by ${worst} levels`);
  vae.dispose();
});

test('the loader is strict and names the file, key and flag', () => {
  const dir = tmpDir();
  assert.throws(() => loadVae(dir), (e: unknown) => e instanceof UserError && /no config\.json/.test(e.message));
  const bad = path.join(dir, 'vae');
  fs.mkdirSync(bad);
  const cfg = JSON.parse(fs.readFileSync(path.join(FIX, 'legacy-f32', 'config.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(bad, 'config.json'), JSON.stringify({ ...cfg, layers_per_block: 2 }));
  fs.copyFileSync(path.join(FIX, 'legacy-f32', 'diffusion_pytorch_model.safetensors'), path.join(bad, 'diffusion_pytorch_model.safetensors'));
  assert.throws(() => loadVae(dir), (e: unknown) => e instanceof UserError && /missing tensor.*resnets\.1/.test(e.message));
  fs.writeFileSync(path.join(bad, 'config.json'), JSON.stringify({ ...cfg, norm_num_groups: 3 }));
  assert.throws(() => loadVae(dir), (e: unknown) => e instanceof UserError && /norm_num_groups 3/.test(e.message));
});

test('the demo VAE (scripts/make-demo-vae.ts) decodes the tiny DiT\'s 4×8×8 latents to 32×32 images', async () => {
  const vae = loadVae(path.join(import.meta.dirname, '..', '..', 'models', 'demo-vae'));
  assert.equal(vae.factor, 4);
  const img = await decodeLatents(vae, new Float32Array(4 * 8 * 8).fill(0.5), 1, 8, 8);
  assert.equal(img.length, 32 * 32 * 3);
  assert.ok(new Set(img).size > 10, 'a picture, not a constant');
  vae.dispose();
});

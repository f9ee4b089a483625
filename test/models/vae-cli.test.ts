// `onelora vae encode|decode` and `onelora sample --vae` through commander, against the float64 torch
// VAE of scripts/make-vae-fixtures.py: the golden pixels go in as PNG files, the golden latents as a
// latent file, and what comes out is compared with torch's mean and decoded images.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { initBackend } from '../../src/backend/select.js';
import { readSafetensors, writeSafetensors } from '../../src/checkpoint/safetensors.js';
import { registerSample } from '../../src/cli/commands/sample.js';
import { registerVae } from '../../src/cli/commands/vae.js';
import { maxAbsDiff, runCommands, tmpDir } from './helpers.js';

await initBackend('wasm');
const ROOT = path.resolve(import.meta.dirname, '../..');
const FIX = path.join(ROOT, 'test', 'fixtures', 'vae');
const VAE = path.join(FIX, 'current-f16');
const golden = readSafetensors(path.join(FIX, 'golden.safetensors')).tensors;
const g = (name: string): Float32Array => golden.get(name)!.data as Float32Array;
const [N, , H, W] = golden.get('pixels')!.shape as [number, number, number, number];
const S = 0.18215;
/** Lets the test runner write its report of the previous test before stdout is captured. */
const run = async (...args: string[]) => {
  await new Promise((r) => setTimeout(r, 100));
  return runCommands([registerVae, registerSample], ...args);
};
/** The --json result line (the test runner's own reports may share the captured stdout). */
const last = (out: string): Record<string, unknown> => JSON.parse(out.slice(out.lastIndexOf('{"out"')).split('\n')[0]!) as Record<string, unknown>;

/** Image i of an [N, 3, H, W] array as H × W × 3. */
function hwc(values: ArrayLike<number>, i: number, f: (v: number) => number): Uint8Array {
  const out = new Uint8Array(H * W * 3);
  for (let c = 0; c < 3; c++) for (let p = 0; p < H * W; p++) out[p * 3 + c] = f(values[(i * 3 + c) * H * W + p]!);
  return out;
}

test('vae encode: PNGs in sorted name order -> the torch posterior mean × scaling_factor', async () => {
  const dir = tmpDir();
  const imgs = path.join(dir, 'imgs');
  fs.mkdirSync(imgs);
  // Named so that sorted order is the fixture order.
  for (let i = 0; i < N; i++) await sharp(hwc(g('pixels'), i, (v) => v), { raw: { width: W, height: H, channels: 3 } }).png().toFile(path.join(imgs, `img-${i}.png`));
  const out = path.join(dir, 'z.safetensors');
  const r = await run('vae', 'encode', '--vae', VAE, '--images', imgs, '--out', out, '--json');
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(last(r.out).shape, golden.get('mean')!.shape);
  const z = readSafetensors(out).tensors.get('latents')!;
  const d = maxAbsDiff(z.data as Float32Array, g('mean').map((v) => v * S));
  assert.ok(d < 1e-4 * S, `max |Δ| ${d}`);
  const s = await run('vae', 'encode', '--vae', VAE, '--images', path.join(imgs, 'img-1.png'), '--out', out, '--vae-sample', 'sample', '--seed', '5', '--json');
  assert.equal(s.code, 0, s.err);
  assert.deepEqual(last(s.out).shape, [1, 4, H / 2, W / 2]);
});

test('vae decode: scaled latents -> PNGs equal to torch\'s decoded images (8-bit rounding)', async () => {
  const dir = tmpDir();
  const lat = path.join(dir, 'z.safetensors');
  writeSafetensors(lat, { latents: { dtype: 'F32', shape: [...golden.get('z')!.shape], data: g('z').map((v) => v * S) } });
  const out = path.join(dir, 'png');
  const r = await run('vae', 'decode', '--vae', VAE, '--latents', lat, '--out', out, '--grid', path.join(dir, 'grid.png'), '--json');
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(fs.readdirSync(out), ['000000.png', '000001.png']);
  for (let i = 0; i < N; i++) {
    const { data } = await sharp(path.join(out, `00000${i}.png`)).raw().toBuffer({ resolveWithObject: true });
    const want = hwc(g('decoded'), i, (v) => Math.floor(((Math.min(1, Math.max(-1, v)) + 1) / 2) * 255 + 0.5));
    assert.ok(maxAbsDiff(data, want) <= 1, `image ${i}`);
  }
  const meta = await sharp(path.join(dir, 'grid.png')).metadata();
  assert.deepEqual([meta.width, meta.height], [2 * (W + 2) + 2, H + 4], 'make_grid: 2 per row, 2 px padding');
});

test('sample --vae --out DIR writes PNGs, a grid and the latents; --out FILE.safetensors still writes latents', async () => {
  const dir = tmpDir();
  const out = path.join(dir, 'samples');
  const r = await run('sample', '--model', path.join(ROOT, 'models', 'demo-dit'), '--class', '2', '--steps', '4', '--num', '3', '--vae', VAE, '--out', out, '--json');
  assert.equal(r.code, 0, r.err);
  const res = last(r.out);
  assert.equal(res.images, 3);
  assert.deepEqual(fs.readdirSync(path.join(out, 'images')), ['000000.png', '000001.png', '000002.png']);
  assert.ok(fs.existsSync(path.join(out, 'grid.png')) && fs.existsSync(path.join(out, 'latents.safetensors')));
  const meta = await sharp(path.join(out, 'images', '000000.png')).metadata();
  assert.deepEqual([meta.width, meta.height], [16, 16], 'tiny DiT 8×8 latents, VAE factor 2');
  const f = await run('sample', '--model', path.join(ROOT, 'models', 'demo-dit'), '--class', '2', '--steps', '2', '--out', path.join(dir, 'z.safetensors'), '--json');
  assert.equal(f.code, 0, f.err);
  assert.deepEqual(last(f.out).shape, [1, 4, 8, 8]);
});

test('bad inputs are exit 2 naming the flag or file', async () => {
  const dir = tmpDir();
  const cases: [string[], RegExp][] = [
    [['vae', 'encode', '--vae', VAE, '--images', path.join(dir, 'none'), '--out', path.join(dir, 'z.safetensors')], /--images .*no such file/],
    [['vae', 'encode', '--vae', dir, '--images', path.join(FIX, '..'), '--out', path.join(dir, 'z.safetensors')], /--images .*no image files/],
    [['vae', 'decode', '--vae', VAE, '--latents', path.join(dir, 'none.safetensors'), '--out', dir], /--latents .*no such file/],
    [['vae', 'decode', '--vae', dir, '--latents', path.join(FIX, 'golden.safetensors'), '--out', dir], /--latents .*no tensor 'latents'/],
    [['sample', '--model', path.join(ROOT, 'models', 'demo-dit'), '--class', '1', '--out', path.join(dir, 'pngs')], /without --vae the output is latents/],
  ];
  for (const [args, re] of cases) {
    const r = await run(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
  }
});

// The FID Inception network against pytorch-fid's construction in torch (torchvision's Inception3 with
// the FID blocks; scripts/make-inception-fixtures.py): pool3 features of two small images through
// the 299 bilinear resize, on seeded hash weights both sides compute, within 1e-4.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { initBackend, tf } from '../../src/backend/select.js';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../../src/checkpoint/safetensors.js';
import { FidInception, inceptionTensorShapes } from '../../src/eval/inception.js';
import { TensorSetError } from '../../src/checkpoint/tensor-set.js';
import { registerEval } from '../../src/cli/commands/eval.js';
import { readRgb, writePng } from '../../src/data/image-files.js';
import { writeNpz } from '../../src/eval/npy.js';
import { runCommands } from '../models/helpers.js';
import { tmpDir } from '../helpers.js';

await initBackend('wasm');
const FIX = path.join(import.meta.dirname, '..', 'fixtures', 'fid');

function fnv1a(name: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(name)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/** The fixture script's weights(name, shape), element for element. */
function weights(name: string, shape: readonly number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const h = fnv1a(name);
  const out = new Float32Array(n);
  const scale = Math.sqrt(6 / (n / shape[0]!));
  for (let i = 0; i < n; i++) {
    let x = (Math.imul(i, 0x9e3779b1) + h) >>> 0;
    x = (x ^ (x >>> 16)) >>> 0;
    x = Math.imul(x, 0x7feb352d) >>> 0;
    x = (x ^ (x >>> 15)) >>> 0;
    x = Math.imul(x, 0x846ca68b) >>> 0;
    x = (x ^ (x >>> 16)) >>> 0;
    const u = (x >>> 8) / 2 ** 24;
    if (name.endsWith('bn.weight')) out[i] = 1 + (2 * u - 1) / 4;
    else if (name.endsWith('bn.bias') || name.endsWith('running_mean') || name.endsWith('fc.bias')) out[i] = (2 * u - 1) / 10;
    else if (name.endsWith('running_var')) out[i] = 0.5 + u;
    else out[i] = (2 * u - 1) * scale;
  }
  return out;
}

const dir = tmpDir('inception');
const file = path.join(dir, 'pt_inception.safetensors');
const tensors: Record<string, TensorToWrite> = {};
for (const [name, shape] of inceptionTensorShapes()) tensors[name] = { dtype: 'F32', shape: [...shape], data: weights(name, shape) };
tensors['fc.weight'] = { dtype: 'F32', shape: [1008, 2048], data: weights('fc.weight', [1008, 2048]) };
writeSafetensors(file, tensors);
const fix = readSafetensors(path.join(FIX, 'inception.safetensors')).tensors;

test('pool3 features equal torch\'s FIDInceptionV3 within 1e-4', async () => {
  const net = FidInception.load(file);
  const img = fix.get('images')!;
  const x = tf.tensor4d(img.data as Float32Array, img.shape as [number, number, number, number]);
  const before = tf.memory().numTensors;
  const t0 = performance.now();
  const f = net.features(x);
  const got = await f.data();
  console.log(`2 images: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  f.dispose();
  assert.equal(tf.memory().numTensors, before);
  const want = fix.get('features')!.data as Float32Array;
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  const top = want.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
  console.log(`max |Δ| ${worst.toExponential(2)} (features up to ${top.toFixed(2)})`);
  assert.ok(worst < 1e-4 * Math.max(1, top), `max |Δ| ${worst}`);
  x.dispose();
  net.dispose();
  // Strict: a state dict missing a block is refused naming it.
  const broken = path.join(dir, 'broken.safetensors');
  const { ['Mixed_7c.branch_pool.conv.weight']: _dropped, ...rest } = tensors;
  writeSafetensors(broken, rest);
  assert.throws(() => FidInception.load(broken), (e: unknown) => e instanceof TensorSetError && /Mixed_7c\.branch_pool\.conv\.weight/.test(e.message));
});

/** Lets the test runner write its report of the previous test before stdout is captured. */
const run = async (...args: string[]) => {
  await new Promise((r) => setTimeout(r, 100));
  return runCommands([registerEval], ...args);
};
const last = (out: string): Record<string, unknown> => JSON.parse(out.slice(out.lastIndexOf('{"fid"')).split('\n')[0]!) as Record<string, unknown>;

test('eval fid --images --ref: folders, pytorch-fid stats (--save-stats) and ADM arr_0 batches give one FID', async () => {
  const img = fix.get('images')!;
  const [n, h, w] = img.shape as [number, number, number];
  const px = Uint8Array.from(img.data as Float32Array);
  const a = path.join(dir, 'a');
  const b = path.join(dir, 'b');
  fs.mkdirSync(a);
  fs.mkdirSync(b);
  for (let i = 0; i < n; i++) {
    const one = px.subarray(i * h * w * 3, (i + 1) * h * w * 3);
    await writePng(path.join(a, `${i}.png`), one, h, w);
    await writePng(path.join(b, `${i}.png`), one.map((v, k) => (k % 3 === i ? 255 - v : v)), h, w); // another set
  }
  const stats = path.join(dir, 'b.npz');
  const r1 = await run('eval', 'fid', '--images', b, '--save-stats', stats, '--inception', file, '--json');
  assert.equal(r1.code, 0, r1.err);
  assert.equal(last(r1.out).fid, null);
  const r2 = await run('eval', 'fid', '--images', a, '--ref', b, '--inception', file, '--json');
  const r3 = await run('eval', 'fid', '--images', a, '--ref', stats, '--inception', file, '--json');
  assert.equal(r2.code, 0, r2.err);
  assert.equal(r3.code, 0, r3.err);
  const f2 = last(r2.out).fid as number;
  assert.ok(f2 > 0 && Math.abs((last(r3.out).fid as number) - f2) < 1e-6 * f2, `${f2} vs ${String(last(r3.out).fid)}`);
  // An ADM reference batch of the same images as arr_0 [N, H, W, 3].
  const bpx = new Float64Array(n * h * w * 3);
  for (let i = 0; i < n; i++) {
    const { data } = await readRgb(path.join(b, `${i}.png`));
    bpx.set(data, i * h * w * 3);
  }
  const adm = path.join(dir, 'adm.npz');
  writeNpz(adm, { arr_0: { data: bpx, shape: [n, h, w, 3] } });
  const r4 = await run('eval', 'fid', '--images', a, '--ref', adm, '--inception', file, '--json');
  assert.equal(r4.code, 0, r4.err);
  assert.ok(Math.abs((last(r4.out).fid as number) - f2) < 1e-6 * f2);
  // The saved statistics as --real with .npz on both sides: zero distance.
  const r5 = await runCommands([registerEval], 'eval', 'fid', '--real', stats, '--fake', stats, '--json');
  assert.ok(Math.abs(last(r5.out).fid as number) < 1e-6);
  const bad = await run('eval', 'fid', '--images', a, '--ref', b, '--inception', path.join(dir, 'none.safetensors'));
  assert.equal(bad.code, 2);
  assert.match(bad.err, /convert-fid-inception\.py/);
});

test('eval dit-fid: samples with uniform classes to PNGs, FID against a reference, resumed without redoing batches', async () => {
  const root = path.resolve(import.meta.dirname, '../..');
  const out = path.join(dir, 'dit-fid');
  const args = ['eval', 'dit-fid', '--model', path.join(root, 'models', 'demo-dit'), '--vae', path.join(root, 'models', 'demo-vae'), '--ref', path.join(dir, 'a'),
    '--num', '3', '--batch', '2', '--steps', '4', '--out', out, '--inception', file, '--json'];
  const r1 = await run(...args);
  assert.equal(r1.code, 0, r1.err);
  const first = last(r1.out);
  assert.deepEqual(fs.readdirSync(path.join(out, 'images')), ['000000.png', '000001.png', '000002.png']);
  assert.ok((first.fid as number) > 0 && first.reused === 0);
  const kept = fs.readFileSync(path.join(out, 'images', '000002.png'));
  fs.rmSync(path.join(out, 'images', '000002.png'));
  const r2 = await run(...args);
  assert.equal(r2.code, 0, r2.err);
  assert.equal(last(r2.out).reused, 2, 'the first batch is kept');
  assert.ok(fs.readFileSync(path.join(out, 'images', '000002.png')).equals(kept), 'the redone batch equals the original');
  assert.ok(Math.abs((last(r2.out).fid as number) - (first.fid as number)) < 1e-9 * (first.fid as number));
});

test('eval dit-fid: the guidance scale is the run config\'s diffusion.sample_cfg unless --cfg is given', async () => {
  const root = path.resolve(import.meta.dirname, '../..');
  const config = path.join(dir, 'dit-run.yaml');
  // The demo preset with another guidance scale (its relative paths rewritten for this folder).
  const preset = fs.readFileSync(path.join(root, 'presets', 'tiny-dit-demo.yaml'), 'utf8');
  fs.writeFileSync(config, preset.replaceAll('../', `${root}/`).replace('sample_cfg: 1.5', 'sample_cfg: 3'));
  const go = async (name: string, ...flags: string[]): Promise<{ cfg: unknown; png: Buffer }> => {
    const out = path.join(dir, name);
    const r = await run('eval', 'dit-fid', '--model', path.join(root, 'models', 'demo-dit'), '--vae', path.join(root, 'models', 'demo-vae'), '--ref', path.join(dir, 'a'),
      '--num', '2', '--batch', '2', '--steps', '3', '--out', out, '--inception', file, '--json', ...flags);
    assert.equal(r.code, 0, r.err);
    return { cfg: last(r.out).cfg, png: fs.readFileSync(path.join(out, 'images', '000000.png')) };
  };
  const fromConfig = await go('cfg-config', '--config', config);
  assert.equal(fromConfig.cfg, 3);
  const flag = await go('cfg-flag', '--cfg', '3');
  assert.ok(fromConfig.png.equals(flag.png), 'sampled as with --cfg 3');
  const overridden = await go('cfg-override', '--config', config, '--cfg', '1.5');
  assert.equal(overridden.cfg, 1.5);
  assert.ok(!overridden.png.equals(flag.png), 'another guidance scale gives another sample');
  const notDiffusion = await run('eval', 'dit-fid', '--model', 'x', '--vae', 'x', '--ref', 'x', '--out', path.join(dir, 'x'), '--inception', file, '--config', path.join(root, 'presets', 'tiny-vit-demo.yaml'));
  assert.equal(notDiffusion.code, 2);
  assert.match(notDiffusion.err, /--config .*tiny-vit-demo\.yaml: task is 'classification'/);
});

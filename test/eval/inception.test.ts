// The FID Inception network against pytorch-fid's construction in torch (torchvision's Inception3 with
// the FID blocks; scripts/make-inception-fixtures.py): pool3 features of two small images through
// the 299 bilinear resize, on seeded hash weights both sides compute, within 1e-4.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { initBackend, tf } from '../../src/backend/select.js';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../../src/checkpoint/safetensors.js';
import { FidInception, inceptionTensorShapes } from '../../src/eval/inception.js';
import { TensorSetError } from '../../src/checkpoint/tensor-set.js';
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

test('pool3 features equal torch\'s FIDInceptionV3 within 1e-4', async () => {
  const file = path.join(tmpDir('inception'), 'pt_inception.safetensors');
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, shape] of inceptionTensorShapes()) tensors[name] = { dtype: 'F32', shape: [...shape], data: weights(name, shape) };
  tensors['fc.weight'] = { dtype: 'F32', shape: [1008, 2048], data: weights('fc.weight', [1008, 2048]) };
  writeSafetensors(file, tensors);
  const net = FidInception.load(file);
  const fix = readSafetensors(path.join(FIX, 'inception.safetensors')).tensors;
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
  delete tensors['Mixed_7c.branch_pool.conv.weight'];
  writeSafetensors(file, tensors);
  assert.throws(() => FidInception.load(file), (e: unknown) => e instanceof TensorSetError && /Mixed_7c\.branch_pool\.conv\.weight/.test(e.message));
});

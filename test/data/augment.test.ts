import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evalBatch, evalBox, randomResizedCropBox, resampleNormalize, trainBatch, trainBox } from '../../src/data/augment.js';
import { Rng } from '../../src/nn/rng.js';

const ID = { mean: [0, 0, 0], std: [1 / 255, 1 / 255, 1 / 255] } as const; // (x/255 − 0)/(1/255) = x

function image(h: number, w: number, seed = 1): Uint8Array {
  const r = new Rng(seed);
  return Uint8Array.from({ length: h * w * 3 }, () => r.int(256));
}

void test('RandomResizedCrop boxes stay inside the image, within scale and ratio', () => {
  const rng = new Rng(3);
  for (let i = 0; i < 500; i++) {
    const b = randomResizedCropBox(rng, 48, 64);
    assert.ok(b.top >= 0 && b.left >= 0 && b.top + b.height <= 48 && b.left + b.width <= 64);
    const frac = (b.height * b.width) / (48 * 64);
    assert.ok(frac > 0.06 && frac <= 1.0001, `area ${frac}`);
    const ratio = b.width / b.height;
    assert.ok(ratio > 0.6 && ratio < 1.6, `ratio ${ratio}`);
  }
});

void test('after 10 failed tries RandomResizedCrop falls back to the ratio-clipped center crop', () => {
  assert.deepEqual(randomResizedCropBox(new Rng(1), 1000, 10, [0.9, 1]), { top: 493, left: 0, height: 13, width: 10 });
  assert.deepEqual(randomResizedCropBox(new Rng(1), 10, 1000, [0.9, 1]), { top: 0, left: 493, height: 10, width: 13 });
});

void test('same (seed, epoch, sample index) → same crop and flip on any worker; others differ', () => {
  const a = trainBox(0, 2, 17, 256, 256);
  assert.deepEqual(trainBox(0, 2, 17, 256, 256), a);
  const others = [trainBox(0, 2, 18, 256, 256), trainBox(0, 3, 17, 256, 256), trainBox(1, 2, 17, 256, 256)];
  for (const o of others) assert.notDeepEqual(o, a);
  const flips = Array.from({ length: 400 }, (_, i) => trainBox(0, 0, i, 64, 64).flip).filter(Boolean).length;
  assert.ok(flips > 150 && flips < 250, `flip rate ${flips}/400`);
  // The same sample in two different micro-batches (two workers) gives identical tensors.
  const imgs = [image(32, 32, 1), image(32, 32, 2), image(32, 32, 3)];
  const opts = { size: 24, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } as const;
  const cat = (ks: number[]) => Uint8Array.from(ks.flatMap((k) => [...imgs[k]!]));
  const w0 = trainBatch(cat([0, 1]), 32, 32, [{ index: 0, epoch: 1 }, { index: 1, epoch: 1 }], 5, opts);
  const w1 = trainBatch(cat([2, 1]), 32, 32, [{ index: 2, epoch: 1 }, { index: 1, epoch: 1 }], 5, opts);
  const per = 24 * 24 * 3;
  assert.deepEqual(w0.subarray(per), w1.subarray(per));
  assert.ok(w0.every((v) => v >= -1 && v <= 1));
});

void test('bilinear resampling: identity, half-pixel centers like torch (align_corners=False), flip mirrors', () => {
  const img = image(8, 8);
  const same = resampleNormalize(img, 8, 8, { top: 0, left: 0, height: 8, width: 8, flip: false }, { size: 8, ...ID });
  same.forEach((v, i) => assert.ok(Math.abs(v - img[i]!) < 1e-3));
  // 1×2 → 1×4: torch.nn.functional.interpolate([[0, 10]], 4, mode='bilinear') = [0, 2.5, 7.5, 10].
  const two = Uint8Array.from([0, 0, 0, 10, 10, 10]);
  const up = resampleNormalize(two, 1, 2, { top: 0, left: 0, height: 1, width: 2, flip: false }, { size: 4, ...ID }, new Float32Array(48));
  assert.deepEqual([...up.subarray(0, 12)].filter((_, i) => i % 3 === 0).map((v) => Math.round(v * 100) / 100), [0, 2.5, 7.5, 10]);
  const box = { top: 1, left: 2, height: 5, width: 6 };
  const a = resampleNormalize(img, 8, 8, { ...box, flip: false }, { size: 6, ...ID });
  const b = resampleNormalize(img, 8, 8, { ...box, flip: true }, { size: 6, ...ID });
  for (let y = 0; y < 6; y++) for (let x = 0; x < 6; x++) for (let c = 0; c < 3; c++) {
    assert.ok(Math.abs(a[(y * 6 + x) * 3 + c]! - b[(y * 6 + 5 - x) * 3 + c]!) < 1e-4);
  }
});

void test('eval transform: short side to `resize`, center crop', () => {
  assert.deepEqual(evalBox(256, 256, 224), { top: 0, left: 0, height: 256, width: 256, flip: false });
  const b = evalBox(200, 400, 100, 100);
  assert.deepEqual([b.top, b.left, b.height, b.width], [0, 100, 200, 200]);
  const img = image(8, 8);
  const out = evalBatch(img, 8, 8, 1, { size: 4, resize: 8, ...ID });
  // Resize 8→8 is the identity, then the center 4×4.
  for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) assert.ok(Math.abs(out[(y * 4 + x) * 3]! - img[((y + 2) * 8 + x + 2) * 3]!) < 1e-3);
});

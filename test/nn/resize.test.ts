// resize2d against torch's F.interpolate (scripts/make-depth-fixtures.py writes the cases): bicubic
// by size and by scale factor, bilinear with align_corners true and false, up and down; and its
// gradient is the transposed matrix (a matmul), so it exists on every backend.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { initBackend, tf } from '../../src/backend/select.js';
import { resize2d } from '../../src/nn/resize.js';

await initBackend('wasm');

interface Case { mode: 'bilinear' | 'bicubic'; align_corners: boolean; size: [number, number]; scale_factor: [number, number] | null; out: number[] }
const R = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, '..', 'fixtures', 'resize.json'), 'utf8')) as { input: number[]; shape: [number, number, number]; cases: Case[] };

for (const c of R.cases) {
  const how = c.scale_factor ? `scale_factor ${c.scale_factor.map((s) => s.toFixed(3)).join('×')}` : `size ${c.size.join('×')}`;
  void test(`${c.mode} align_corners=${c.align_corners} ${how} matches torch`, async () => {
    const x = tf.tensor4d(R.input, [1, ...R.shape]);
    const y = resize2d(x, c.size, { mode: c.mode, alignCorners: c.align_corners, ...(c.scale_factor ? { scaleFactor: c.scale_factor } : {}) });
    assert.deepEqual(y.shape, [1, ...c.size, 3]);
    const v = await y.data();
    const err = c.out.reduce((m, w, i) => Math.max(m, Math.abs(w - v[i]!)), 0);
    assert.ok(err < 1e-5, `max |Δ| = ${err}`);
    tf.dispose([x, y]);
  });
}

void test('the gradient flows (Σ of the output by the input: column sums of the matrices)', async () => {
  const x = tf.ones([1, 5, 7, 1]) as tf.Tensor4D;
  const g = tf.grad((t: tf.Tensor) => tf.sum(resize2d(t as tf.Tensor4D, [10, 14], { mode: 'bilinear', alignCorners: true })))(x);
  const v = Array.from(await g.data() as Float32Array);
  // Rows of a resize matrix sum to 1, so the total gradient is the number of outputs.
  assert.ok(Math.abs(v.reduce((a, b) => a + b, 0) - 140) < 1e-3);
  tf.dispose([x, g]);
});

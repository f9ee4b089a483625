// The kernels `onelora bench step` led to (grouped bmm, rmsNorm, SwiGLU and RoPE as custom ops,
// tidied custom gradients) give the same values and gradients as tfjs's built-in ops, on every
// available backend.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tf } from '../../src/backend/select.js';
import { bmm } from '../../src/backend/linear.js';
import { applyRope } from '../../src/nn/attention.js';
import { rmsNorm, silu, swiGlu } from '../../src/nn/ops.js';
import { forEachBackend } from '../helpers.js';

function close(a: tf.Tensor, b: tf.Tensor, tol = 1e-4): void {
  const x = a.dataSync();
  const y = b.dataSync();
  assert.deepEqual(a.shape, b.shape);
  let max = 0;
  for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs((x[i] as number) - (y[i] as number)));
  assert.ok(max < tol, `max abs diff ${max}`);
}

await forEachBackend(() => {
  test('grouped bmm (above the batched-kernel threshold) equals tf.matMul with its gradients', () => {
    const a = tf.randomNormal([6, 64, 32], 0, 1, 'float32', 1) as tf.Tensor3D;
    const b = tf.randomNormal([6, 32, 48], 0, 1, 'float32', 2) as tf.Tensor3D;
    const g = tf.randomNormal([6, 64, 48], 0, 1, 'float32', 3);
    const f = (mm: (x: tf.Tensor3D, y: tf.Tensor3D) => tf.Tensor) => tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(mm(x as tf.Tensor3D, y as tf.Tensor3D), g)));
    close(bmm(a, b), tf.matMul(a, b));
    const [da, db] = f(bmm)([a, b]);
    const [ea, eb] = f((x, y) => tf.matMul(x, y))([a, b]);
    close(da as tf.Tensor, ea as tf.Tensor);
    close(db as tf.Tensor, eb as tf.Tensor);
  });

  test('rmsNorm, swiGlu and applyRope custom ops equal the plain-op formulas and their gradients', () => {
    const x = tf.randomNormal([12, 16], 0, 1, 'float32', 4) as tf.Tensor2D;
    const w = tf.variable(tf.randomNormal([16], 1, 0.1, 'float32', 5) as tf.Tensor1D, true);
    const gy = tf.randomNormal([12, 16], 0, 1, 'float32', 6);
    const plainNorm = (xi: tf.Tensor, wi: tf.Tensor) => tf.mul(tf.mul(xi, tf.rsqrt(tf.add(tf.mean(tf.square(xi), -1, true), 1e-5))), wi);
    const ours = tf.grads((xi: tf.Tensor, wi: tf.Tensor) => tf.sum(tf.mul(rmsNorm(xi as tf.Tensor2D, wi as tf.Tensor1D, 1e-5), gy)));
    const ref = tf.grads((xi: tf.Tensor, wi: tf.Tensor) => tf.sum(tf.mul(plainNorm(xi, wi), gy)));
    const [dx, dw] = ours([x, w]);
    const [ex, ew] = ref([x, w]);
    close(dx as tf.Tensor, ex as tf.Tensor);
    close(dw as tf.Tensor, ew as tf.Tensor);

    const u = tf.randomNormal([12, 16], 0, 1, 'float32', 7) as tf.Tensor2D;
    const [sa, su] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(swiGlu(a as tf.Tensor2D, b as tf.Tensor2D), gy)))([x, u]);
    const [ra, ru] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.mul(silu(a), b), gy)))([x, u]);
    close(sa as tf.Tensor, ra as tf.Tensor);
    close(su as tf.Tensor, ru as tf.Tensor);

    const q = tf.randomNormal([2, 2, 5, 8], 0, 1, 'float32', 8) as tf.Tensor4D;
    const gq = tf.randomNormal([2, 2, 5, 8], 0, 1, 'float32', 9);
    const plainRope = (t: tf.Tensor, off: number) => {
      const ang = tf.tidy(() => {
        const inv = tf.tensor1d([0, 1, 2, 3].map((i) => Math.fround(1 / 10000 ** ((2 * i) / 8))));
        const a = tf.mul(tf.range(off, off + 5).reshape([5, 1]), inv.reshape([1, 4]));
        return tf.concat([a, a], 1);
      });
      const [x1, x2] = tf.split(t, 2, 3);
      return tf.add(tf.mul(t, tf.cos(ang)), tf.mul(tf.concat([tf.neg(x2 as tf.Tensor), x1 as tf.Tensor], 3), tf.sin(ang)));
    };
    close(applyRope(q, 10000, 3), plainRope(q, 3));
    const dq = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(applyRope(t as tf.Tensor4D, 10000, 3), gq)))(q);
    const eq = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(plainRope(t, 3), gq)))(q);
    close(dq, eq);
  });
});

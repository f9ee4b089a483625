// linear, matmul and bmm against tfjs built-ins, values and gradients, on every available backend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/backend/select.js';
import { linear, matmul, bmm } from '../../src/backend/linear.js';
import { forEachBackend } from '../helpers.js';

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] ?? Infinity);
}

function seeded(shape: number[], seed: number): tf.Tensor {
  return tf.randomNormal(shape, 0, 1, 'float32', seed);
}

await forEachBackend(() => {
  test('frozen linear: value and dx equal tfjs built-in matMul and its gradient', () => {
    tf.tidy(() => {
      const x = seeded([5, 7], 1) as tf.Tensor2D;
      const w = seeded([7, 3], 2) as tf.Tensor2D;
      const bias = seeded([3], 3) as tf.Tensor1D;
      const g = seeded([5, 3], 4);
      const ours = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(linear(xi as tf.Tensor2D, w, { bias }), g)));
      const ref = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(tf.add(tf.matMul(xi as tf.Tensor2D, w), bias), g)));
      assert.ok(maxAbsDiff(linear(x, w, { bias }), tf.add(tf.matMul(x, w), bias)) < 1e-5);
      assert.ok(maxAbsDiff(ours(x), ref(x)) < 1e-5);
    });
  });

  test('trainable linear: dx, dW and dbias equal the built-in gradients', () => {
    tf.tidy(() => {
      const x = seeded([6, 4], 5) as tf.Tensor2D;
      const w = seeded([4, 5], 6) as tf.Tensor2D;
      const b = seeded([5], 7) as tf.Tensor1D;
      const g = seeded([6, 5], 8);
      const ours = tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
        tf.sum(tf.mul(linear(xi as tf.Tensor2D, wi as tf.Tensor2D, { bias: bi as tf.Tensor1D, trainWeight: true, trainBias: true }), g)));
      const ref = tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => tf.sum(tf.mul(tf.add(tf.matMul(xi as tf.Tensor2D, wi as tf.Tensor2D), bi), g)));
      const a = ours([x, w, b]);
      const r = ref([x, w, b]);
      for (let i = 0; i < 3; i++) assert.ok(maxAbsDiff(a[i]!, r[i]!) < 1e-5, `gradient ${i}`);
    });
  });

  test('matmul and bmm gradients equal the built-in ones and finite differences', () => {
    tf.tidy(() => {
      const a = seeded([3, 4], 9) as tf.Tensor2D;
      const b = seeded([4, 2], 10) as tf.Tensor2D;
      const g = seeded([3, 2], 11);
      const [da, db] = tf.grads((ai: tf.Tensor, bi: tf.Tensor) => tf.sum(tf.mul(matmul(ai as tf.Tensor2D, bi as tf.Tensor2D), g)))([a, b]);
      const [ra, rb] = tf.grads((ai: tf.Tensor, bi: tf.Tensor) => tf.sum(tf.mul(tf.matMul(ai as tf.Tensor2D, bi as tf.Tensor2D), g)))([a, b]);
      assert.ok(maxAbsDiff(da!, ra!) < 1e-5 && maxAbsDiff(db!, rb!) < 1e-5);

      const p = seeded([2, 3, 4], 12) as tf.Tensor3D;
      const q = seeded([2, 4, 5], 13) as tf.Tensor3D;
      const h = seeded([2, 3, 5], 14);
      const loss = (pi: tf.Tensor, qi: tf.Tensor) => tf.sum(tf.mul(bmm(pi as tf.Tensor3D, qi as tf.Tensor3D), h));
      const [dp, dq] = tf.grads(loss)([p, q]);
      const [rp, rq] = tf.grads((pi: tf.Tensor, qi: tf.Tensor) => tf.sum(tf.mul(tf.matMul(pi, qi), h)))([p, q]);
      assert.ok(maxAbsDiff(dp!, rp!) < 1e-5 && maxAbsDiff(dq!, rq!) < 1e-5);
      // Central finite difference on one element of p.
      const eps = 1e-2;
      const pv = p.arraySync();
      const bump = (d: number) => { const c = structuredClone(pv); c[1]![2]![3]! += d; return tf.tensor3d(c); };
      const fd = (loss(bump(eps), q).dataSync()[0]! - loss(bump(-eps), q).dataSync()[0]!) / (2 * eps);
      const analytic = (dp!.arraySync() as number[][][])[1]![2]![3]!;
      assert.ok(Math.abs(fd - analytic) < 1e-2 * Math.max(1, Math.abs(analytic)), `fd ${fd} vs ${analytic}`);
    });
  });

  test('linear layers leak no tensors across calls', () => {
    const x = seeded([256, 64], 15) as tf.Tensor2D;
    const w = seeded([64, 64], 16) as tf.Tensor2D;
    const run = (trainWeight: boolean) => {
      const before = tf.memory().numTensors;
      const info = tf.tidy(() => {
        const f = (xi: tf.Tensor) => tf.sum(linear(tf.relu(xi) as tf.Tensor2D, w, { trainWeight }));
        return trainWeight ? tf.grads((xi: tf.Tensor, wi: tf.Tensor) => tf.sum(linear(tf.relu(xi) as tf.Tensor2D, wi as tf.Tensor2D, { trainWeight })))([x, w]) : [tf.grad(f)(x)];
      });
      tf.dispose(info);
      return tf.memory().numTensors - before;
    };
    run(false); // warm-up fills the transpose cache once
    assert.equal(run(false), 0, 'no tensor leaks');
    assert.equal(run(true), 0, 'no tensor leaks');
  });
});

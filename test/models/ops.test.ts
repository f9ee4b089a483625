import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/backend/tf.js';
import { forEachBackend } from '../helpers.js';
import { crossEntropySum, embedding, oneHotF32 } from '../../src/nn/ops.js';

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] as number);
}

await forEachBackend(() => {
  test('oneHotF32 is a real one-hot (tfjs-wasm returns zeros for oneHot(..., "float32"))', () => {
    const oh = oneHotF32(tf.tensor1d([1, 0], 'int32'), 3);
    assert.deepEqual(Array.from(oh.dataSync()), [0, 1, 0, 1, 0, 0]);
  });

  test('crossEntropySum and embedding gradients equal tfjs built-in gradients', () => {
    tf.tidy(() => {
      const z = tf.randomNormal([4, 7], 0, 1, 'float32', 1) as tf.Tensor2D;
      const lab = tf.tensor1d([1, -100, 6, 0], 'int32');
      const ours = tf.grad((zz: tf.Tensor) => crossEntropySum(zz as tf.Tensor2D, lab))(z);
      const safe = tf.tensor1d([1, 0, 6, 0], 'int32');
      const w = tf.tensor1d([1, 0, 1, 1]);
      const ref = tf.grad((zz: tf.Tensor) => tf.neg(tf.sum(tf.mul(tf.sum(tf.mul(tf.cast(tf.oneHot(safe, 7), 'float32'), tf.logSoftmax(zz)), 1), w))))(z);
      assert.ok(maxDiff(ours, ref) < 1e-6);
      const table = tf.randomNormal([5, 3], 0, 1, 'float32', 2) as tf.Tensor2D;
      const ids = tf.tensor1d([4, 0, 4], 'int32');
      const g = tf.randomNormal([3, 3], 0, 1, 'float32', 3);
      const ge = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(embedding(t as tf.Tensor2D, ids), g)))(table);
      const gr = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.matMul(tf.cast(tf.oneHot(ids, 5), 'float32'), t), g)))(table);
      assert.ok(maxDiff(ge, gr) < 1e-6);
    });
  });
});

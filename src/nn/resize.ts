// Image resizing with torch.nn.functional.interpolate's semantics (bilinear and bicubic,
// align_corners true or false, `size` or `scale_factor`), as separable matrices: each output row
// is a fixed weighted sum of input rows, so a resize is two matmuls over NHWC [N, H, W, C]. Written
// by hand because tfjs has no bicubic resize, and its bilinear gradient kernel is missing on some
// backends; a matmul is differentiable everywhere. Checked against torch in test/nn/resize.test.ts.
import { tf } from '../backend/tf.js';
import { matmul } from '../backend/linear.js';

export type ResizeMode = 'bilinear' | 'bicubic';

export interface ResizeOptions {
  readonly mode: ResizeMode;
  readonly alignCorners: boolean;
  /**
   * torch's `scale_factor` per axis [h, w]: the output size is then ⌊in · s⌋ (given as `size` too)
   * and source coordinates use 1/s instead of in/out (the original DINOv2 position-table rule).
   */
  readonly scaleFactor?: readonly [number, number];
}

// PyTorch's cubic convolution constant (upsample_bicubic2d), not PIL's −0.5.
const A = -0.75;
const cubic1 = (x: number): number => ((A + 2) * x - (A + 3)) * x * x + 1;
const cubic2 = (x: number): number => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;

/** [out, in] weights: output position o reads Σ_i m[o, i] · input[i]. */
function resizeMatrix(inSize: number, outSize: number, mode: ResizeMode, alignCorners: boolean, scaleFactor?: number): Float32Array {
  const m = new Float64Array(outSize * inSize);
  const scale = alignCorners
    ? (outSize > 1 ? (inSize - 1) / (outSize - 1) : 0)
    : scaleFactor !== undefined && scaleFactor > 0 ? 1 / scaleFactor : inSize / outSize;
  const clamp = (i: number): number => Math.min(Math.max(i, 0), inSize - 1);
  for (let o = 0; o < outSize; o++) {
    let src = alignCorners ? scale * o : scale * (o + 0.5) - 0.5;
    if (mode === 'bilinear') {
      if (!alignCorners && src < 0) src = 0;
      const i0 = Math.floor(src);
      const i1 = Math.min(i0 + 1, inSize - 1);
      const l = src - i0;
      m[o * inSize + clamp(i0)] += 1 - l;
      m[o * inSize + i1] += l;
    } else {
      const i = Math.floor(src);
      const t = src - i;
      const w = [cubic2(t + 1), cubic1(t), cubic1(1 - t), cubic2(2 - t)];
      for (let k = 0; k < 4; k++) m[o * inSize + clamp(i - 1 + k)] += w[k]!;
    }
  }
  return Float32Array.from(m);
}

/** x [N, H, W, C] -> [N, oh, ow, C], as F.interpolate(x_nchw, size=(oh, ow), mode, align_corners). */
export function resize2d(x: tf.Tensor4D, size: readonly [number, number], opts: ResizeOptions): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const [oh, ow] = size;
  if (oh === h && ow === w && !opts.scaleFactor) return x;
  return tf.tidy(() => {
    const mh = tf.tensor2d(resizeMatrix(h, oh, opts.mode, opts.alignCorners, opts.scaleFactor?.[0]), [oh, h]);
    const mw = tf.tensor2d(resizeMatrix(w, ow, opts.mode, opts.alignCorners, opts.scaleFactor?.[1]), [ow, w]);
    const byH = tf.transpose(x, [1, 0, 2, 3]).reshape([h, n * w * c]) as tf.Tensor2D; // [H, N·W·C]
    const y1 = matmul(mh, byH).reshape([oh, n, w, c]); // [oh, N, W, C]
    const byW = tf.transpose(y1, [2, 1, 0, 3]).reshape([w, n * oh * c]) as tf.Tensor2D; // [W, N·oh·C]
    const y2 = matmul(mw, byW).reshape([ow, n, oh, c]); // [ow, N, oh, C]
    return tf.transpose(y2, [1, 2, 0, 3]) as tf.Tensor4D; // [N, oh, ow, C]
  });
}

// 2-D convolution and group normalisation for the convolutional parts of the coming models (the
// Depth Anything DPT head, the Stable Diffusion VAE), with PyTorch's semantics (torch.nn.Conv2d,
// torch.nn.GroupNorm; checked against torch in test/nn/conv.test.ts).
//
// Layout: activations are NHWC [N, H, W, C] (tfjs's native layout: its conv kernels on every
// backend take channels last) and conv weights are HWIO [kh, kw, in/groups, out]. PyTorch
// checkpoints hold NCHW activations and OIHW weights [out, in/groups, kh, kw]: convert them once
// at load time with `convWeightFromTorch` (and back with `convWeightToTorch`), and activations at
// the model's edges with `nchwToNhwc` / `nhwcToNchw`.
//
// The convolution is one custom op whose forward and backward use only the forward Conv2D and
// Conv2DBackpropInput kernels: tfjs-backend-wasm has no Conv2DBackpropFilter, so the weight
// gradient is itself a forward convolution (of the input by the output gradient, dilated by the
// stride). A dilated kernel is expanded to its dense, zero-filled equivalent first, which also
// lifts tfjs's "strides or dilations must be 1" restriction; groups run as one convolution each.
import { tf } from '../backend/tf.js';
import { customOp } from '../backend/linear.js';

type T1 = tf.Tensor1D;
type T4 = tf.Tensor4D;

/** Symmetric [ph, pw] as torch's `padding`, or explicit [[top, bottom], [left, right]] (F.pad before the conv). */
export type Padding2d = number | readonly [number, number] | readonly [readonly [number, number], readonly [number, number]];

export interface Conv2dOptions {
  readonly stride?: number | readonly [number, number];
  readonly padding?: Padding2d;
  readonly dilation?: number | readonly [number, number];
  readonly groups?: number;
  readonly bias?: T1 | null;
}

const pair = (v: number | readonly [number, number] | undefined, dflt: number): [number, number] =>
  v === undefined ? [dflt, dflt] : typeof v === 'number' ? [v, v] : [v[0], v[1]];

function explicitPadding(p: Padding2d | undefined): [[number, number], [number, number]] {
  if (p === undefined || typeof p === 'number') return [[p ?? 0, p ?? 0], [p ?? 0, p ?? 0]];
  const [a, b] = p;
  return typeof a === 'number' ? [[a, a], [b as number, b as number]] : [[a[0], a[1]], [(b as readonly [number, number])[0], (b as readonly [number, number])[1]]];
}

/** [k, (k−1)·d + 1] 0/1 matrix placing tap i at row i·d (exact: products by 1 and sums with 0). */
function spreadMatrix(k: number, d: number): tf.Tensor2D {
  const rows = (k - 1) * d + 1;
  const m = new Float32Array(rows * k);
  for (let i = 0; i < k; i++) m[i * d * k + i] = 1;
  return tf.tensor2d(m, [rows, k]);
}

/** w [kh, kw, I, O] with dilation (dh, dw) -> the dense kernel [(kh−1)dh+1, (kw−1)dw+1, I, O] it equals. */
function dilateKernel(w: T4, dh: number, dw: number): T4 {
  if (dh === 1 && dw === 1) return w;
  const [kh, kw, i, o] = w.shape;
  const KH = (kh - 1) * dh + 1;
  const KW = (kw - 1) * dw + 1;
  const rowsH = tf.matMul(spreadMatrix(kh, dh), w.reshape([kh, kw * i * o])); // [KH, kh]·[kh, kw·I·O]
  const byW = tf.transpose(rowsH.reshape([KH, kw, i * o]), [1, 0, 2]).reshape([kw, KH * i * o]); // -> [kw, KH·I·O]
  const rowsW = tf.matMul(spreadMatrix(kw, dw), byW); // [KW, KH·I·O]
  return tf.transpose(rowsW.reshape([KW, KH, i, o]), [1, 0, 2, 3]) as T4; // -> [KH, KW, I, O]
}

/**
 * Unpadded, undilated, ungrouped convolution x [N, H, W, I] * w [kh, kw, I, O] -> [N, Ho, Wo, O].
 * A frozen kernel is closed over (saved, not an input), so the backward computes no dW for it.
 */
function convValid(x: T4, w: T4, sh: number, sw: number, trainW: boolean): T4 {
  return customOp<T4>(trainW ? [x, w] : [x], ([xi, wi], save) => {
    save([xi as T4, (wi ?? w) as T4]);
    return {
      value: tf.conv2d(xi as T4, (wi ?? w) as T4, [sh, sw], 'valid'),
      gradFunc: (dy, saved) => {
        const [sx, sk] = saved as [T4, T4];
        const [kh, kw] = sk.shape;
        const dx = tf.conv2dTranspose(dy, sk, sx.shape, [sh, sw], 'valid');
        if (!trainW) return dx;
        // dW[a, b, i, o] = Σ_{n, p, q} x[n, p·sh + a, q·sw + b, i] · dy[n, p, q, o]: a convolution of
        // x (batch and channels swapped, [I, H, W, N]) by dy as the filter [Ho, Wo, N, O], dilated by the stride.
        const xt = tf.transpose(sx, [3, 1, 2, 0]);
        const dyt = tf.transpose(dy, [1, 2, 0, 3]);
        const full = tf.conv2d(xt as T4, dyt as T4, 1, 'valid', 'NHWC', [sh, sw]); // [I, ≥kh, ≥kw, O]
        const dw = tf.transpose(tf.slice(full, [0, 0, 0, 0], [-1, kh, kw, -1]), [1, 2, 0, 3]); // -> [kh, kw, I, O]
        return [dx, dw];
      },
    };
  });
}

/**
 * torch.nn.functional.conv2d in NHWC: x [N, H, W, C_in], w [kh, kw, C_in/groups, C_out] ->
 * [N, Ho, Wo, C_out], Ho = ⌊(H + pad_h − dh·(kh − 1) − 1) / sh⌋ + 1. Differentiable in x, w and
 * bias; a frozen (non-trainable) tf.Variable weight gets no gradient and costs none.
 */
export function conv2d(x: T4, w: T4, opts: Conv2dOptions = {}): T4 {
  const [sh, sw] = pair(opts.stride, 1);
  const [dh, dw] = pair(opts.dilation, 1);
  const [[top, bottom], [left, right]] = explicitPadding(opts.padding);
  const groups = opts.groups ?? 1;
  const cin = x.shape[3];
  const cout = w.shape[3];
  if (cin !== w.shape[2] * groups) throw new Error(`conv2d: input has ${cin} channels, weight [${w.shape.join(', ')}] with groups ${groups} needs ${w.shape[2] * groups}`);
  if (cout % groups !== 0) throw new Error(`conv2d: ${cout} output channels do not split into ${groups} groups`);
  return tf.tidy(() => {
    const xp = top || bottom || left || right ? (tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]]) as T4) : x;
    const trainW = !(w instanceof tf.Variable && !w.trainable);
    const k = dilateKernel(w, dh, dw);
    let y: T4;
    if (groups === 1) y = convValid(xp, k, sh, sw, trainW);
    else {
      const xs = tf.split(xp, groups, 3) as T4[];
      const ks = tf.split(k, groups, 3) as T4[];
      y = tf.concat(xs.map((xg, g) => convValid(xg, ks[g]!, sh, sw, trainW)), 3) as T4;
    }
    return opts.bias ? (tf.add(y, opts.bias) as T4) : y;
  });
}

/**
 * torch.nn.functional.group_norm in NHWC: the C channels fall into `groups` consecutive groups,
 * each normalised over (H, W, its C/groups channels) per sample with the biased variance, then
 * scaled and shifted per channel. x [N, H, W, C], w and b [C] (or null) -> [N, H, W, C].
 */
export function groupNorm(x: T4, groups: number, w: T1 | null, b: T1 | null, eps: number): T4 {
  const [n, h, wd, c] = x.shape;
  if (c % groups !== 0) throw new Error(`groupNorm: ${c} channels do not split into ${groups} groups`);
  return tf.tidy(() => {
    const xg = x.reshape([n, h * wd, groups, c / groups]); // [N, H·W, G, C/G]
    const { mean, variance } = tf.moments(xg, [1, 3], true); // [N, 1, G, 1]
    let y: tf.Tensor = tf.mul(tf.sub(xg, mean), tf.rsqrt(tf.add(variance, eps))).reshape([n, h, wd, c]);
    if (w) y = tf.mul(y, w);
    if (b) y = tf.add(y, b);
    return y as T4;
  });
}

/** PyTorch's conv weight [out, in/groups, kh, kw] (OIHW, row-major) -> HWIO [kh, kw, in/groups, out]. */
export function convWeightFromTorch(data: Float32Array, shape: readonly number[]): T4 {
  if (shape.length !== 4) throw new Error(`convWeightFromTorch: shape [${shape.join(', ')}] is not [out, in, kh, kw]`);
  return tf.tidy(() => tf.transpose(tf.tensor4d(data, shape as [number, number, number, number]), [2, 3, 1, 0]));
}

/** HWIO [kh, kw, in/groups, out] -> PyTorch's OIHW values and shape, for writing checkpoints. */
export function convWeightToTorch(w: T4): { data: Float32Array; shape: [number, number, number, number] } {
  const [kh, kw, i, o] = w.shape;
  const data = tf.tidy(() => tf.transpose(w, [3, 2, 0, 1]).dataSync() as Float32Array);
  return { data: Float32Array.from(data), shape: [o, i, kh, kw] };
}

/** [N, C, H, W] -> [N, H, W, C] */
export function nchwToNhwc(x: T4): T4 {
  return tf.transpose(x, [0, 2, 3, 1]);
}

/** [N, H, W, C] -> [N, C, H, W] */
export function nhwcToNchw(x: T4): T4 {
  return tf.transpose(x, [0, 3, 1, 2]);
}

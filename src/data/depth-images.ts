// Depth Anything's input pipeline (docs/depth.md#preprocessing), shared by training, `eval depth`
// and `onelora depth`: the image is resized keeping its aspect ratio to sides that are multiples of
// 14, bicubically, then normalised with ImageNet's mean and std; the prediction is resized back to
// the image's own size before any metric. The two code bases size differently:
//   'lower-bound' (the original code): the larger scale, so both sides reach the target;
//   'minimal'     (transformers): the scale closer to 1, so the image changes as little as possible;
// and both round side/14 half to even (Python's round, numpy's np.round), with a lower bound
// pushing up to the next multiple. Training adds a random crop and a horizontal flip, seeded.
import { tf } from '../backend/tf.js';
import { Rng, mixSeed } from '../nn/rng.js';
import { resize2d } from '../nn/resize.js';

const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } as const;

export type SizeRule = 'lower-bound' | 'minimal';

/** Round half to even, as Python's round() and numpy's np.round (Math.round rounds halves up). */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function multipleOf(x: number, m: number, min: number): number {
  const y = roundHalfEven(x / m) * m;
  return y < min ? Math.ceil(x / m) * m : y;
}

/** The network input size [h, w] for an image of h × w and a target side (518 by default). */
export function inputSize(h: number, w: number, target: number, rule: SizeRule, multiple = 14): [number, number] {
  let sh = target / h;
  let sw = target / w;
  if (rule === 'lower-bound') sh = sw = Math.max(sh, sw);
  else if (Math.abs(1 - sw) < Math.abs(1 - sh)) sh = sw;
  else sw = sh;
  const min = rule === 'lower-bound' ? target : 0;
  return [multipleOf(sh * h, multiple, min), multipleOf(sw * w, multiple, min)];
}

/** uint8 HWC images [B·H·W·3] -> normalised float [B, h, w, 3] at the network size (bicubic on [0, 1] values). */
export function toInput(images: Uint8Array, b: number, h: number, w: number, size: readonly [number, number]): tf.Tensor4D {
  return tf.tidy(() => {
    const x = tf.div(tf.tensor4d(images, [b, h, w, 3], 'int32').toFloat(), 255) as tf.Tensor4D;
    const r = resize2d(x, size, { mode: 'bicubic', alignCorners: false });
    return tf.div(tf.sub(r, IMAGENET.mean as unknown as number[]), IMAGENET.std as unknown as number[]) as tf.Tensor4D;
  });
}

/** A prediction [B, h, w] back to the image size (original: bilinear, transformers: bicubic; align_corners false). */
export function toImageSize(pred: tf.Tensor3D, h: number, w: number, rule: SizeRule): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, ph, pw] = pred.shape;
    const r = resize2d(pred.reshape([b, ph, pw, 1]), [h, w], { mode: rule === 'minimal' ? 'bicubic' : 'bilinear', alignCorners: false });
    return r.reshape([b, h, w]) as tf.Tensor3D;
  });
}

/** Nearest-neighbour resize of one H×W map (depth, valid mask), as cv2.INTER_NEAREST: src = ⌊dst · in/out⌋. */
export function nearest<T extends Float32Array | Uint8Array>(src: T, h: number, w: number, oh: number, ow: number, make: (n: number) => T): T {
  if (oh === h && ow === w) return src;
  const out = make(oh * ow);
  for (let y = 0; y < oh; y++) {
    const sy = Math.min(h - 1, Math.floor((y * h) / oh));
    for (let x = 0; x < ow; x++) out[y * ow + x] = src[sy * w + Math.min(w - 1, Math.floor((x * w) / ow))]!;
  }
  return out;
}

export interface CropFlip {
  readonly top: number;
  readonly left: number;
  readonly flip: boolean;
}

/** The training crop (ch × cw inside h × w) and flip of one sample, seeded by (seed, epoch, sample index). */
export function cropFlip(seed: number, epoch: number, index: number, h: number, w: number, ch: number, cw: number, flip: boolean): CropFlip {
  const rng = new Rng(mixSeed(seed, epoch, index, 0xde97));
  return { top: rng.int(h - ch + 1), left: rng.int(w - cw + 1), flip: flip && rng.float() < 0.5 };
}

/** Crops (and flips) one HWC map of `c` channels. */
export function applyCropFlip<T extends Float32Array | Uint8Array>(src: T, h: number, w: number, c: number, cf: CropFlip, ch: number, cw: number, make: (n: number) => T): T {
  const out = make(ch * cw * c);
  for (let y = 0; y < ch; y++) {
    for (let x = 0; x < cw; x++) {
      const sx = cf.left + (cf.flip ? cw - 1 - x : x);
      for (let k = 0; k < c; k++) out[(y * cw + x) * c + k] = src[((cf.top + y) * w + sx) * c + k]!;
    }
  }
  return out;
}

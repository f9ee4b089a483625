// Image transforms that run on the workers, per sample, on stored uint8 HWC images:
//  - train: torchvision's RandomResizedCrop (scale 0.08–1, ratio 3/4–4/3, 10 tries, then the
//    center-crop fallback) to the model size with bilinear resampling (half-pixel centers, i.e.
//    align_corners=False, no antialias), a horizontal flip with p = 0.5, then (x/255 − mean)/std;
//  - eval: resize the short side to `resize` (default: the model size) and center-crop.
// The random draws come from Rng(seed, epoch, sample index), so a sample gets the same crop on any
// worker and after any re-sharding. Output is float32 [size, size, 3] (NHWC, what tfjs convolves).
import { Rng, mixSeed } from '../nn/rng.js';

export interface NormalizeOptions {
  size: number;
  /** Per-channel mean and std of the model's preprocessing (ViT in21k: 0.5 / 0.5). */
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
}

export interface TrainAugmentOptions extends NormalizeOptions {
  scale?: readonly [number, number];
  ratio?: readonly [number, number];
  flipP?: number;
}

/** A source region (may be fractional for eval) and whether to mirror it. */
export interface Box {
  top: number;
  left: number;
  height: number;
  width: number;
  flip: boolean;
}

export const VIT_NORMALIZE = { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } as const;

/** torchvision.transforms.RandomResizedCrop.get_params, drawing from `rng`. */
export function randomResizedCropBox(
  rng: Rng, height: number, width: number, scale: readonly [number, number] = [0.08, 1], ratio: readonly [number, number] = [3 / 4, 4 / 3],
): Omit<Box, 'flip'> {
  const area = height * width;
  const logR = [Math.log(ratio[0]), Math.log(ratio[1])] as const;
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logR[0], logR[1]));
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.int(height - h + 1);
      const left = rng.int(width - w + 1);
      return { top, left, height: h, width: w };
    }
  }
  // Fallback: the whole image, clipped to the ratio range, centered.
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < Math.min(ratio[0], ratio[1])) h = Math.round(w / Math.min(ratio[0], ratio[1]));
  else if (inRatio > Math.max(ratio[0], ratio[1])) w = Math.round(h * Math.max(ratio[0], ratio[1]));
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

/** The crop and flip of sample `index` in `epoch`: a pure function of its arguments. */
export function trainBox(seed: number, epoch: number, index: number, height: number, width: number, opts: Pick<TrainAugmentOptions, 'scale' | 'ratio' | 'flipP'> = {}): Box {
  const rng = Rng.from(mixSeed(seed, 0xa06), epoch, index);
  const box = randomResizedCropBox(rng, height, width, opts.scale, opts.ratio);
  return { ...box, flip: rng.float() < (opts.flipP ?? 0.5) };
}

/** Resize the short side to `resize`, then center-crop `size` × `size`, as a region of the source. */
export function evalBox(height: number, width: number, size: number, resize = size): Box {
  const s = resize / Math.min(height, width);
  const h = size / s;
  const w = size / s;
  return { top: (height - h) / 2, left: (width - w) / 2, height: h, width: w, flip: false };
}

function axis(start: number, extent: number, n: number, limit: number, flip: boolean): { i0: Int32Array; i1: Int32Array; t: Float32Array } {
  const i0 = new Int32Array(n);
  const i1 = new Int32Array(n);
  const t = new Float32Array(n);
  const step = extent / n;
  const lo = Math.max(0, Math.ceil(start - 1e-6));
  const hi = Math.min(limit - 1, Math.floor(start + extent - 1 + 1e-6));
  for (let o = 0; o < n; o++) {
    let s = start + (o + 0.5) * step - 0.5;
    s = Math.min(Math.max(s, lo), hi);
    const f = Math.floor(s);
    const k = flip ? n - 1 - o : o;
    i0[k] = f;
    i1[k] = Math.min(f + 1, hi);
    t[k] = s - f;
  }
  return { i0, i1, t };
}

/** Bilinear resample of `box` of an HWC uint8 image to size × size, normalized, into `out` at `offset`. */
export function resampleNormalize(
  src: Uint8Array, height: number, width: number, box: Box, opts: NormalizeOptions,
  out = new Float32Array(opts.size * opts.size * 3), offset = 0,
): Float32Array {
  const n = opts.size;
  const ys = axis(box.top, box.height, n, height, false);
  const xs = axis(box.left, box.width, n, width, box.flip);
  const sc = opts.std.map((s) => 1 / (255 * s));
  const bi = opts.mean.map((m, c) => -m / opts.std[c]!);
  const s0 = sc[0]!, s1 = sc[1]!, s2 = sc[2]!, b0 = bi[0]!, b1 = bi[1]!, b2 = bi[2]!;
  const row = width * 3;
  let o = offset;
  for (let y = 0; y < n; y++) {
    const r0 = ys.i0[y]! * row;
    const r1 = ys.i1[y]! * row;
    const ty = ys.t[y]!;
    for (let x = 0; x < n; x++) {
      const c0 = xs.i0[x]! * 3;
      const c1 = xs.i1[x]! * 3;
      const tx = xs.t[x]!;
      const w00 = (1 - ty) * (1 - tx), w01 = (1 - ty) * tx, w10 = ty * (1 - tx), w11 = ty * tx;
      const a = r0 + c0, b = r0 + c1, c = r1 + c0, d = r1 + c1;
      out[o++] = (src[a]! * w00 + src[b]! * w01 + src[c]! * w10 + src[d]! * w11) * s0 + b0;
      out[o++] = (src[a + 1]! * w00 + src[b + 1]! * w01 + src[c + 1]! * w10 + src[d + 1]! * w11) * s1 + b1;
      out[o++] = (src[a + 2]! * w00 + src[b + 2]! * w01 + src[c + 2]! * w10 + src[d + 2]! * w11) * s2 + b2;
    }
  }
  return out;
}

export interface SampleKey {
  index: number;
  epoch: number;
}

/** A micro-batch of stored images (rows back to back) → float32 [N, size, size, 3], augmented per sample. */
export function trainBatch(
  pixels: Uint8Array, height: number, width: number, samples: readonly SampleKey[], seed: number, opts: TrainAugmentOptions,
): Float32Array {
  const per = opts.size * opts.size * 3;
  const out = new Float32Array(samples.length * per);
  samples.forEach((s, k) => {
    const img = pixels.subarray(k * height * width * 3, (k + 1) * height * width * 3);
    resampleNormalize(img, height, width, trainBox(seed, s.epoch, s.index, height, width, opts), opts, out, k * per);
  });
  return out;
}

/** Eval preprocessing of a batch: resize short side to `resize` (default size), center crop, normalize. */
export function evalBatch(pixels: Uint8Array, height: number, width: number, count: number, opts: NormalizeOptions & { resize?: number }): Float32Array {
  const per = opts.size * opts.size * 3;
  const out = new Float32Array(count * per);
  const box = evalBox(height, width, opts.size, opts.resize);
  for (let k = 0; k < count; k++) {
    resampleNormalize(pixels.subarray(k * height * width * 3, (k + 1) * height * width * 3), height, width, box, opts, out, k * per);
  }
  return out;
}

// Depth evaluation over dataset rows, shared by `onelora eval depth` and the trainer's eval (the
// depth task): each image is preprocessed as the model's code base does (docs/depth.md#preprocessing),
// predicted, resized back to the image's size, and scored on the dataset's protocol (depth.ts).
import type { RecordBatch } from 'apache-arrow';
import { tf } from '../backend/tf.js';
import { readDepth, type SchemaInfo } from '../data/arrow.js';
import { inputSize, toImageSize, toInput, type SizeRule } from '../data/depth-images.js';
import type { DepthAnythingModel } from '../models/depth-anything.js';
import { DepthMetricSum, PROTOCOLS, imageMetrics, type DepthProtocol } from './depth.js';

export interface DepthEvalOptions {
  /** Target side of the resize (518 as both code bases). */
  readonly inputSize: number;
  /** Absent: the model's own code base ('lower-bound' for original-layout files, 'minimal' for transformers'). */
  readonly rule?: SizeRule;
  /** SiLog's λ, for the reported loss. */
  readonly varianceFocus: number;
}

const sizeRuleOf = (model: DepthAnythingModel, rule?: SizeRule): SizeRule => rule ?? (model.config.keyLayout === 'hf' ? 'minimal' : 'lower-bound');

/** One batch of images [b·h·w·3] -> depth at their own size [b, h, w] (a tensor the caller disposes). */
export function predictDepth(model: DepthAnythingModel, images: Uint8Array, b: number, h: number, w: number, opts: Pick<DepthEvalOptions, 'inputSize' | 'rule'>): tf.Tensor3D {
  const rule = sizeRuleOf(model, opts.rule);
  const size = inputSize(h, w, opts.inputSize, rule, model.config.patchSize);
  return tf.tidy(() => toImageSize(model.depth(toInput(images, b, h, w, size)), h, w, rule));
}

/**
 * Scale-invariant log loss (Eigen et al. 2014) of one image over the pixels where `use` is 1:
 * √(mean g² − λ (mean g)²), g = log d − log d*; λ = 0.85 is BTS's variance focus.
 */
export function siLog(pred: ArrayLike<number>, gt: ArrayLike<number>, use: ArrayLike<number>, lambda: number): number | null {
  let s = 0;
  let s2 = 0;
  let n = 0;
  for (let i = 0; i < gt.length; i++) {
    if (!use[i]) continue;
    const g = Math.log(Math.max(pred[i]!, 1e-3)) - Math.log(gt[i]!);
    s += g;
    s2 += g * g;
    n++;
  }
  return n ? Math.sqrt(Math.max(s2 / n - lambda * (s / n) ** 2, 0)) : null;
}

/** Pixels the loss uses: measured and inside the dataset's depth caps. */
export function usable(gt: ArrayLike<number>, valid: ArrayLike<number>, p: DepthProtocol): Uint8Array {
  const out = new Uint8Array(gt.length);
  for (let i = 0; i < gt.length; i++) out[i] = valid[i] && gt[i]! > p.minDepth && gt[i]! < p.maxDepth ? 1 : 0;
  return out;
}

export function protocolOf(info: SchemaInfo): DepthProtocol {
  const p = PROTOCOLS[info.depthFormat ?? ''];
  if (!p) throw new Error(`depth rows of format '${info.depthFormat}': no evaluation protocol (nyu, kitti, diode)`);
  return p;
}

/** Mean SiLog `loss` and the six metrics over every image of `batches`, plus `samples`. */
export async function evaluateDepth(model: DepthAnythingModel, info: SchemaInfo, batches: Iterable<RecordBatch> | AsyncIterable<RecordBatch>, opts: DepthEvalOptions): Promise<Record<string, number>> {
  const h = info.height!;
  const w = info.width!;
  const p = protocolOf(info);
  const relative = model.config.depthType === 'relative';
  const sum = new DepthMetricSum();
  let loss = 0;
  let n = 0;
  for await (const rows of batches) {
    const c = readDepth(rows);
    for (let i = 0; i < rows.numRows; i++) {
      const px = h * w;
      const pred = predictDepth(model, c.image.subarray(i * px * 3, (i + 1) * px * 3), 1, h, w, opts);
      const d = (await pred.data()) as Float32Array;
      pred.dispose();
      const gt = c.depth.subarray(i * px, (i + 1) * px);
      const valid = c.valid.subarray(i * px, (i + 1) * px);
      sum.add(imageMetrics(d, gt, valid, h, w, p, relative));
      const l = relative ? null : siLog(d, gt, usable(gt, valid, p), opts.varianceFocus);
      if (l !== null) loss += l;
      n++;
    }
  }
  return { loss: relative ? NaN : n ? loss / n : NaN, ...sum.mean(), samples: n };
}

// Metric depth fine-tuning (the paper's Depth Anything transfers, as Depth Anything's metric
// training): SiLog loss (variance focus λ, 0.85 by default) per sample over its valid pixels,
// summed (the trainer divides by the global batch). Training input: resized keeping aspect so both
// sides reach `input_size` (the original code's lower bound; depth and mask nearest-neighbour), a
// random input_size² crop and a horizontal flip, seeded by (seed, epoch, sample index). Evaluation is
// src/eval/depth-run.ts, as `onelora eval depth`.
import type { RecordBatch } from 'apache-arrow';
import { tf } from '../../backend/tf.js';
import { readDepth, type SchemaInfo } from '../../data/arrow.js';
import { applyCropFlip, cropFlip, inputSize, nearest, toInput } from '../../data/depth-images.js';
import { evaluateDepth, protocolOf, usable } from '../../eval/depth-run.js';
import type { DepthAnythingModel } from '../../models/depth-anything.js';
import type { BatchContext, Task } from '../task.js';

export interface DepthTaskConfig {
  readonly input_size: number;
  readonly random_crop: boolean;
  readonly hflip: boolean;
  readonly variance_focus: number;
}

/** Σ over samples of √(mean g² − λ (mean g)²), g = log d − log d* on the pixels where mask = 1. pred, gt, mask [B, H, W]. */
export function siLogSum(pred: tf.Tensor3D, gt: tf.Tensor3D, mask: tf.Tensor3D, lambda: number): tf.Scalar {
  return tf.tidy(() => {
    const g = tf.mul(tf.sub(tf.log(tf.maximum(pred, 1e-3)), tf.log(tf.maximum(gt, 1e-3))), mask);
    const n = tf.maximum(tf.sum(mask, [1, 2]), 1);
    const mean = tf.div(tf.sum(g, [1, 2]), n);
    const mean2 = tf.div(tf.sum(tf.square(g), [1, 2]), n);
    // ε keeps the gradient of √ finite where a sample has no valid pixel (its value is 0 then).
    return tf.sum(tf.sqrt(tf.add(tf.relu(tf.sub(mean2, tf.mul(lambda, tf.square(mean)))), 1e-12))) as tf.Scalar;
  });
}

export class DepthTask implements Task<DepthAnythingModel> {
  readonly name = 'depth' as const;
  readonly metric = { name: 'loss', lowerIsBetter: true };

  constructor(private readonly cfg: DepthTaskConfig, private readonly info: SchemaInfo) {}

  countUnits(rows: RecordBatch): number {
    return rows.numRows;
  }

  lossSum(model: DepthAnythingModel, rows: RecordBatch, ctx: BatchContext): tf.Scalar {
    const h = this.info.height!;
    const w = this.info.width!;
    const p = protocolOf(this.info);
    const c = readDepth(rows);
    const [sh, sw] = inputSize(h, w, this.cfg.input_size, 'lower-bound', model.config.patchSize);
    const side = this.cfg.input_size - (this.cfg.input_size % model.config.patchSize);
    const [ch, cw] = ctx.training && this.cfg.random_crop ? [Math.min(side, sh), Math.min(side, sw)] : [sh, sw];
    return tf.tidy(() => {
      const xs: tf.Tensor4D[] = [];
      const gts = new Float32Array(rows.numRows * ch * cw);
      const masks = new Float32Array(rows.numRows * ch * cw);
      for (let i = 0; i < rows.numRows; i++) {
        const px = h * w;
        const cf = ctx.training ? cropFlip(ctx.seed, ctx.epoch, ctx.sampleIds[i]!, sh, sw, ch, cw, this.cfg.hflip) : { top: 0, left: 0, flip: false };
        let x = toInput(c.image.subarray(i * px * 3, (i + 1) * px * 3), 1, h, w, [sh, sw]);
        x = tf.slice(x, [0, cf.top, cf.left, 0], [1, ch, cw, 3]);
        xs.push(cf.flip ? tf.reverse(x, 2) : x);
        const gt = c.depth.subarray(i * px, (i + 1) * px);
        const use = usable(gt, c.valid.subarray(i * px, (i + 1) * px), p);
        const f32 = (n: number): Float32Array => new Float32Array(n);
        const u8 = (n: number): Uint8Array => new Uint8Array(n);
        gts.set(applyCropFlip(nearest(Float32Array.from(gt), h, w, sh, sw, f32), sh, sw, 1, cf, ch, cw, f32), i * ch * cw);
        masks.set(applyCropFlip(nearest(use, h, w, sh, sw, u8), sh, sw, 1, cf, ch, cw, u8), i * ch * cw);
      }
      const pred = model.depth(tf.concat(xs, 0));
      const shape: [number, number, number] = [rows.numRows, ch, cw];
      return siLogSum(pred, tf.tensor3d(gts, shape), tf.tensor3d(masks, shape), this.cfg.variance_focus);
    });
  }

  async evaluate(model: DepthAnythingModel, batches: Iterable<{ rows: RecordBatch; ctx: BatchContext }> | AsyncIterable<{ rows: RecordBatch; ctx: BatchContext }>): Promise<Record<string, number>> {
    async function* rowsOf(): AsyncIterable<RecordBatch> {
      for await (const b of batches) yield b.rows;
    }
    return evaluateDepth(model, this.info, rowsOf(), { inputSize: this.cfg.input_size, varianceFocus: this.cfg.variance_focus });
  }
}

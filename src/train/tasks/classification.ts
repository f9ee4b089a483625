// Image classification (the paper's ViT experiments): cross-entropy summed over samples (the
// trainer divides by the global batch size, docs/architecture.md#contracts), RandomResizedCrop + flip seeded by
// (seed, epoch, sample index) for training, resize + center crop for evaluation; metrics are
// loss, accuracy and the expected calibration error (15 equal-width confidence bins, Guo et al. 2017).
import type { RecordBatch } from 'apache-arrow';
import { tf } from '../../backend/tf.js';
import { readFixed, type SchemaInfo } from '../../data/arrow.js';
import { evalBatch, trainBatch, VIT_NORMALIZE } from '../../data/augment.js';
import type { AdaptableModel } from '../../nn/modules.js';
import type { BatchContext, Task } from '../task.js';

export interface ClassifierModel extends AdaptableModel {
  /** pixels: float32 [B, H, W, 3], normalised -> logits [B, classes]. */
  logits(pixels: tf.Tensor4D): tf.Tensor2D;
  /** Normalisation of the model's preprocessing (preprocessor_config.json); ViT in21k: 0.5 / 0.5. */
  readonly imageMean?: readonly [number, number, number];
  readonly imageStd?: readonly [number, number, number];
}

export interface AugmentConfig {
  readonly random_resized_crop: boolean;
  readonly crop_scale: readonly number[];
  readonly hflip: boolean;
  readonly image_size: number;
}

const ECE_BINS = 15;

/** Expected calibration error of predicted confidences against correctness. */
function expectedCalibrationError(confidence: ArrayLike<number>, correct: ArrayLike<number>, bins = ECE_BINS): number {
  const n = confidence.length;
  if (n === 0) return NaN;
  const conf = new Float64Array(bins);
  const acc = new Float64Array(bins);
  const count = new Float64Array(bins);
  for (let i = 0; i < n; i++) {
    const c = confidence[i] as number;
    const b = Math.min(bins - 1, Math.max(0, Math.ceil(c * bins) - 1));
    conf[b] = (conf[b] as number) + c;
    acc[b] = (acc[b] as number) + (correct[i] as number);
    count[b] = (count[b] as number) + 1;
  }
  let ece = 0;
  for (let b = 0; b < bins; b++) if ((count[b] as number) > 0) ece += Math.abs((acc[b] as number) - (conf[b] as number)) / n;
  return ece;
}

export class ClassificationTask implements Task<ClassifierModel> {
  readonly name = 'classification' as const;
  readonly metric = { name: 'accuracy', lowerIsBetter: false };

  constructor(
    private readonly augment: AugmentConfig,
    private readonly info: SchemaInfo,
  ) {}

  countUnits(rows: RecordBatch): number {
    return rows.numRows;
  }

  private pixels(model: ClassifierModel, rows: RecordBatch, ctx: BatchContext): { x: tf.Tensor4D; labels: Int32Array } {
    const { values, labels } = readFixed<Uint8Array>(rows, 'image');
    const h = this.info.height as number;
    const w = this.info.width as number;
    const size = this.augment.image_size;
    const norm = { size, mean: model.imageMean ?? VIT_NORMALIZE.mean, std: model.imageStd ?? VIT_NORMALIZE.std };
    const data = ctx.training && this.augment.random_resized_crop
      ? trainBatch(values, h, w, ctx.sampleIds.map((index) => ({ index, epoch: ctx.epoch })), ctx.seed, { ...norm, scale: [this.augment.crop_scale[0] ?? 0.08, this.augment.crop_scale[1] ?? 1], flipP: this.augment.hflip ? 0.5 : 0 })
      : evalBatch(values, h, w, rows.numRows, norm);
    return { x: tf.tensor4d(data, [rows.numRows, size, size, 3]), labels };
  }

  lossSum(model: ClassifierModel, rows: RecordBatch, ctx: BatchContext): tf.Scalar {
    return tf.tidy(() => {
      const { x, labels } = this.pixels(model, rows, ctx);
      const logits = model.logits(x);
      const onehot = tf.oneHot(tf.tensor1d(labels, 'int32'), logits.shape[1]);
      // Σ_i −log softmax(z_i)[y_i]
      return tf.neg(tf.sum(tf.mul(onehot, tf.logSoftmax(logits)))) as tf.Scalar;
    });
  }

  async evaluate(model: ClassifierModel, batches: Iterable<{ rows: RecordBatch; ctx: BatchContext }> | AsyncIterable<{ rows: RecordBatch; ctx: BatchContext }>): Promise<Record<string, number>> {
    let lossSum = 0;
    const conf: number[] = [];
    const correct: number[] = [];
    for await (const { rows, ctx } of batches) {
      const { loss, probs, labels } = tf.tidy(() => {
        const { x, labels: y } = this.pixels(model, rows, { ...ctx, training: false });
        const logp = tf.logSoftmax(model.logits(x));
        const onehot = tf.oneHot(tf.tensor1d(y, 'int32'), logp.shape[1]);
        return { loss: tf.neg(tf.sum(tf.mul(onehot, logp))), probs: tf.exp(logp), labels: y };
      });
      lossSum += (await loss.data())[0] as number;
      const p = (await probs.array()) as number[][];
      tf.dispose([loss, probs]);
      p.forEach((row, i) => {
        let arg = 0;
        for (let c = 1; c < row.length; c++) if ((row[c] as number) > (row[arg] as number)) arg = c;
        conf.push(row[arg] as number);
        correct.push(arg === labels[i] ? 1 : 0);
      });
    }
    const n = conf.length;
    return { loss: n ? lossSum / n : NaN, accuracy: n ? correct.reduce((a, b) => a + b, 0) / n : NaN, ece: expectedCalibrationError(conf, correct), samples: n };
  }
}

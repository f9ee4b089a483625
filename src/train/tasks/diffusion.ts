// The diffusion task (the paper's DiT → Food-101 experiment): rows `latent: FixedSizeList<Float32>`
// (C·H·W, already scaled by the VAE factor) + `label: Int32`; per sample, DiT's loss
// ‖ε − ε_θ‖² + L_vlb (src/models/diffusion.ts). The timestep, the label dropout to the null class
// and the noise of a sample are drawn from (seed, epoch, sample index) alone, so any split of a
// batch over workers and micro-batches draws the same numbers and gives the same summed loss.
import type { RecordBatch } from 'apache-arrow';
import { tf } from '../../backend/tf.js';
import { readFixed } from '../../data/arrow.js';
import { Rng } from '../../nn/rng.js';
import { UserError } from '../../errors.js';
import { gaussian, linearSchedule, trainingLosses, type DiffusionSchedule } from '../../models/diffusion.js';
import type { DitModel } from '../../models/dit.js';
import type { BatchContext, Task } from '../task.js';

/** The run config's `diffusion:` section (src/config/schema.ts). */
export interface DiffusionTaskConfig {
  readonly timesteps?: number;
  readonly beta_schedule?: 'linear';
  readonly class_dropout?: number;
}

/** Keeps these draws apart from any other stream seeded by (seed, epoch, sample). */
const SALT = 0xd1ff;

export interface SampleDraws {
  readonly t: Int32Array;
  readonly labels: Int32Array;
  readonly noise: Float32Array;
}

export class DiffusionTask implements Task<DitModel> {
  readonly name = 'diffusion' as const;
  readonly metric = { name: 'loss', lowerIsBetter: true };
  private readonly schedule: DiffusionSchedule;
  private readonly classDropout: number;

  constructor(cfg: DiffusionTaskConfig = {}) {
    if ((cfg.beta_schedule ?? 'linear') !== 'linear') throw new UserError(`diffusion.beta_schedule: only 'linear' is implemented, got '${cfg.beta_schedule}'`);
    this.schedule = linearSchedule(cfg.timesteps ?? 1000);
    this.classDropout = cfg.class_dropout ?? 0.1;
  }

  countUnits(rows: RecordBatch): number {
    return rows.numRows;
  }

  /** Timesteps, labels after dropout (training only) and noise for the rows, from (seed, epoch, sample id). */
  draws(model: DitModel, rows: RecordBatch, ctx: BatchContext): SampleDraws & { latents: Float32Array } {
    const { values, labels, rowSize } = readFixed<Float32Array>(rows, 'latent');
    const c = model.config;
    const want = c.inChannels * c.inputSize * c.inputSize;
    if (rowSize !== want) throw new UserError(`latent rows hold ${rowSize} values, ${c.name} needs ${c.inChannels}×${c.inputSize}×${c.inputSize} = ${want}`);
    if (ctx.sampleIds.length !== rows.numRows) throw new Error(`${rows.numRows} rows but ${ctx.sampleIds.length} sample ids`);
    const drop = ctx.training ? this.classDropout : 0;
    const nullClass = drop > 0 ? model.nullClass : -1;
    const n = rows.numRows;
    const t = new Int32Array(n);
    const y = new Int32Array(n);
    const noise = new Float32Array(n * rowSize);
    for (let i = 0; i < n; i++) {
      const label = labels[i]!;
      if (label < 0 || label >= c.numClasses) throw new UserError(`latent row ${i} (sample ${ctx.sampleIds[i]}): label ${label} is outside [0, ${c.numClasses})`);
      const rng = Rng.from(ctx.seed, ctx.epoch, ctx.sampleIds[i]!, SALT);
      t[i] = rng.int(this.schedule.numTimesteps);
      y[i] = drop > 0 && rng.float() < drop ? nullClass : label;
      noise.set(gaussian(rng, rowSize), i * rowSize);
    }
    return { t, labels: y, noise, latents: values };
  }

  private losses(model: DitModel, rows: RecordBatch, ctx: BatchContext): ReturnType<typeof trainingLosses> {
    const d = this.draws(model, rows, ctx);
    const c = model.config;
    const shape: [number, number, number, number] = [rows.numRows, c.inChannels, c.inputSize, c.inputSize];
    return tf.tidy(() => trainingLosses(model, tf.tensor4d(d.latents, shape), tf.tensor4d(d.noise, shape), d.t, d.labels, this.schedule));
  }

  lossSum(model: DitModel, rows: RecordBatch, ctx: BatchContext): tf.Scalar {
    return tf.tidy(() => tf.sum(this.losses(model, rows, ctx).loss));
  }

  /** Mean per-sample loss and its two terms over the validation rows (seeded draws, no label dropout). */
  async evaluate(model: DitModel, batches: Iterable<{ rows: RecordBatch; ctx: BatchContext }> | AsyncIterable<{ rows: RecordBatch; ctx: BatchContext }>): Promise<Record<string, number>> {
    let loss = 0;
    let mse = 0;
    let vb = 0;
    let n = 0;
    for await (const { rows, ctx } of batches) {
      const sums = tf.tidy(() => {
        const l = this.losses(model, rows, { ...ctx, training: false });
        return tf.stack([tf.sum(l.loss), tf.sum(l.mse), tf.sum(l.vb)]);
      });
      const [a, b, v] = Array.from(await sums.data());
      sums.dispose();
      loss += a!;
      mse += b!;
      vb += v!;
      n += rows.numRows;
    }
    return n ? { loss: loss / n, mse: mse / n, vb: vb / n, samples: n } : { loss: NaN, mse: NaN, vb: NaN, samples: 0 };
  }
}

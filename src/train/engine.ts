// One replica's training step, shared by the single-process trainer and the distributed worker:
// gradients of the normalised loss over this replica's micro-batches, summed into one fused buffer
// (which the worker all-reduces), then clipping and AdamW on every replica identically.
import type { RecordBatch } from 'apache-arrow';
import { tf } from '../backend/tf.js';
import { RunError } from '../errors.js';
import { withDropoutContext } from '../nn/dropout.js';
import type { AdaptableModel } from '../nn/modules.js';
import { FusedParams } from './fused.js';
import { AdamW, clipGlobalNorm } from './optimizer.js';
import { learningRate, type ScheduleSpec } from './schedule.js';
import type { BatchContext, Task } from './task.js';

export interface MicroBatch {
  readonly rows: RecordBatch;
  readonly ctx: BatchContext;
}

export interface GradResult {
  /** Σ over this replica's micro-batches of ∂(lossSum / globalUnits)/∂θ, fused. */
  readonly grad: Float32Array;
  /** Σ of the per-unit losses (undivided), for the step's mean loss after summing over replicas. */
  readonly lossSum: number;
  /** Peak live tensor bytes seen during the forward/backward passes. */
  readonly peakBytes: number;
}

export interface EngineOptions {
  readonly schedule: ScheduleSpec;
  readonly betas: readonly [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly gradClip: number;
  /** Keys of trainable tensors without weight decay (biases, norms), as HF Trainer excludes them. */
  readonly noDecay: (key: string) => boolean;
}

export class TrainEngine<M extends AdaptableModel = AdaptableModel> {
  readonly fused: FusedParams;
  readonly optimizer: AdamW;
  private readonly decayMask: Uint8Array;
  private readonly vars: tf.Variable[];

  constructor(
    readonly model: M,
    readonly task: Task<M>,
    trainable: ReadonlyMap<string, tf.Variable>,
    readonly opts: EngineOptions,
  ) {
    this.fused = new FusedParams(trainable);
    this.vars = this.fused.slots.map((s) => s.variable);
    this.optimizer = new AdamW(this.fused.size, { betas: opts.betas, eps: opts.eps, weightDecay: opts.weightDecay });
    this.decayMask = this.fused.decayMask(opts.noDecay);
  }

  /** An engine whose master copy is read (a GPU backend reads it asynchronously). */
  static async create<M extends AdaptableModel>(model: M, task: Task<M>, trainable: ReadonlyMap<string, tf.Variable>, opts: EngineOptions): Promise<TrainEngine<M>> {
    const engine = new TrainEngine(model, task, trainable, opts);
    await engine.fused.ready();
    return engine;
  }

  /**
   * Gradients of Σ_micro lossSum / globalUnits; nothing is applied yet. The loss and the fused
   * gradient are summed over the micro-batches on the device and read back together, once per
   * step: a GPU step makes one host round-trip, not one per tensor.
   */
  async computeGrads(micro: readonly MicroBatch[], globalUnits: number): Promise<GradResult> {
    await this.fused.ready();
    let acc: tf.Tensor1D | null = null; // [1 + size]: Σ loss / globalUnits, then the fused gradient
    let peakBytes = 0;
    try {
      for (const mb of micro) {
        // Adapter dropout masks are keyed by the micro-batch's samples (src/nn/dropout.ts), never by rank.
        const dropout = mb.ctx.training ? mb.ctx : null;
        const profile = await tf.profile(() => {
          const { value: v, grads } = withDropoutContext(dropout, () =>
            tf.variableGrads(() => tf.div(this.task.lossSum(this.model, mb.rows, mb.ctx), globalUnits) as tf.Scalar, this.vars),
          );
          const prev = acc;
          acc = tf.keep(tf.tidy(() => {
            const row: tf.Tensor1D = tf.concat([tf.reshape(v, [1]) as tf.Tensor1D, this.fused.fuse(grads)]);
            return prev ? (tf.add(prev, row) as tf.Tensor1D) : row;
          }));
          tf.dispose([v, ...Object.values(grads), ...(prev ? [prev] : [])]);
        });
        peakBytes = Math.max(peakBytes, profile.peakBytes);
      }
      if (!acc) return { grad: new Float32Array(this.fused.size), lossSum: 0, peakBytes };
      const all = (await (acc as tf.Tensor1D).data()) as Float32Array;
      return { grad: all.slice(1), lossSum: (all[0] as number) * globalUnits, peakBytes };
    } finally {
      (acc as tf.Tensor1D | null)?.dispose();
    }
  }

  /** Clips and applies one AdamW update for optimizer step `step` (0-based); returns lr and the pre-clip norm. */
  applyUpdate(grad: Float32Array, step: number): { lr: number; gradNorm: number } {
    const gradNorm = clipGlobalNorm(grad, this.opts.gradClip);
    if (!Number.isFinite(gradNorm)) throw new RunError(`step ${step + 1}: the gradient norm is ${gradNorm}; no update applied`);
    const lr = learningRate(this.opts.schedule, step);
    this.optimizer.step(this.fused.values, grad, lr, this.decayMask);
    this.fused.push();
    return { lr, gradNorm };
  }

  /** An in-memory commit of the whole trainable state (a few MB for PEFT): parameters and moments. */
  snapshot(): { values: Float32Array; m: Float32Array; v: Float32Array; t: number } {
    return { values: this.fused.values.slice(), m: this.optimizer.m.slice(), v: this.optimizer.v.slice(), t: this.optimizer.t };
  }

  restore(s: { values: Float32Array; m: Float32Array; v: Float32Array; t: number }): void {
    this.fused.values.set(s.values);
    this.fused.markWritten();
    this.fused.push();
    this.optimizer.restore(s);
  }

  /** Restores from per-key tensors (a checkpoint); every key must match the trainable set. */
  restoreByKey(values: Map<string, Float32Array>, m: Map<string, Float32Array>, v: Map<string, Float32Array>, t: number, where: string): void {
    const mv = new Float32Array(this.fused.size);
    const vv = new Float32Array(this.fused.size);
    for (const s of this.fused.slots) {
      const p = values.get(s.key);
      const pm = m.get(s.key);
      const pv = v.get(s.key);
      if (!p || !pm || !pv) throw new RunError(`${where}: no saved state for trainable tensor '${s.key}'`);
      if (p.length !== s.size) throw new RunError(`${where}: '${s.key}' has ${p.length} elements, the model's has ${s.size}`);
      this.fused.values.set(p, s.offset);
      mv.set(pm, s.offset);
      vv.set(pv, s.offset);
    }
    if (values.size !== this.fused.slots.length) {
      const extra = [...values.keys()].filter((k) => !this.fused.slots.some((s) => s.key === k));
      throw new RunError(`${where}: saved tensors not in this run's trainable set: ${extra.slice(0, 5).join(', ')}`);
    }
    this.fused.markWritten();
    this.fused.push();
    this.optimizer.restore({ m: mv, v: vv, t });
  }
}

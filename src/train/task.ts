// A training task turns Arrow rows into tensors and a loss. The trainer normalises as docs/architecture.md#contracts
// says: loss = Σ per-unit losses ÷ the global count (label tokens ≠ -100 for causal LM, samples for
// classification and diffusion), so N workers with accumulation equal one process on the global batch.
import type { RecordBatch } from 'apache-arrow';
import type { tf } from '../backend/tf.js';
import type { AdaptableModel } from '../nn/modules.js';

export type TaskName = 'causal-lm' | 'classification' | 'diffusion' | 'depth';

/** Where a micro-batch sits in the run: seeds augmentation, noise and timesteps per sample. */
export interface BatchContext {
  readonly seed: number;
  readonly epoch: number;
  /** Global sample indices (positions in the dataset) of the rows, in row order. */
  readonly sampleIds: readonly number[];
  readonly training: boolean;
}

/** A held-out question, the model's greedy answer to it and the reference answer. */
export interface TaskExample {
  question: string;
  answer: string;
  expected: string;
}

export interface Task<M extends AdaptableModel = AdaptableModel> {
  readonly name: TaskName;
  /** Normalisation units in these rows (label tokens ≠ -100, or rows). Computed without tensors. */
  countUnits(rows: RecordBatch): number;
  /** Σ of the per-unit losses of one micro-batch (not divided): the trainer divides by the global count. */
  lossSum(model: M, rows: RecordBatch, ctx: BatchContext): tf.Scalar;
  /** Metrics over validation rows (e.g. `loss`, `accuracy`, `ece`); higher/lower-is-better in `metric`. */
  evaluate(model: M, batches: AsyncIterable<{ rows: RecordBatch; ctx: BatchContext }> | Iterable<{ rows: RecordBatch; ctx: BatchContext }>): Promise<Record<string, number>>;
  /** The metric that picks the best checkpoint, and whether lower is better. */
  readonly metric: { readonly name: string; readonly lowerIsBetter: boolean };
  /** Rows answered by the model, shown before and after training in the summary; absent where the task cannot answer (no tokenizer). */
  examples?(model: M, rows: RecordBatch): Promise<TaskExample[]>;
}

// The coordinator's data plane (docs/architecture.md#one-training-step): for the optimizer step that starts at the
// global sample counter it deals the global batch's micro-batches over the live ranks
// (src/data/deal.ts: by length for token data, else round-robin), encodes each as one Arrow IPC
// record batch, and counts the normalisation units of the whole global batch with the task's
// countUnits (no tensors), so every rank divides by the same global count and N workers ≡ one
// process.
import type { RunConfig } from '../src/config/index.js';
import type { Dataset } from '../src/data/arrow-file.js';
import { toIpc } from '../src/data/arrow.js';
import { dealStep } from '../src/data/deal.js';
import type { MicroBatch } from '../src/comm/proto.js';
import type { Task } from '../src/train/task.js';

export interface StepBatches {
  readonly samplesSeen: number;
  readonly worldSize: number;
  /** Labels ≠ -100 (causal LM) or samples in the whole global batch. */
  readonly globalUnits: number;
  /** Index = rank: that rank's micro-batches in accumulation order. */
  readonly perRank: readonly MicroBatch[][];
}

export class DataFeed {
  private cached: StepBatches | null = null;

  constructor(
    private readonly train: Dataset,
    private readonly cfg: RunConfig,
    private readonly task: Pick<Task, 'countUnits'>,
  ) {}

  /** The micro-batches of step `step`, whose global batch starts at `samplesSeen`, over `worldSize` ranks. */
  batches(step: number, samplesSeen: number, worldSize: number): StepBatches {
    const c = this.cached;
    if (c && c.samplesSeen === samplesSeen && c.worldSize === worldSize && c.perRank[0]?.[0]?.step === step) return c;
    const { cfg } = this;
    const deal = dealStep(this.train, cfg, samplesSeen, Array.from({ length: worldSize }, (_, r) => r));
    const rows = deal.map((a) => a.rows);
    const globalUnits = rows.reduce((n, r) => n + this.task.countUnits(r), 0);
    const perRank: MicroBatch[][] = Array.from({ length: worldSize }, () => []);
    deal.forEach((a, q) => {
      perRank[a.rank]!.push({
        step, micro_index: a.accumIndex, accumulation_steps: 0, arrow_ipc: Buffer.from(toIpc(rows[q]!)),
        sample_ids: a.samples.map((s) => s.index), global_label_count: globalUnits, global_batch_size: cfg.batch.global,
      });
    });
    for (const list of perRank) for (const mb of list) mb.accumulation_steps = list.length;
    this.cached = { samplesSeen, worldSize, globalUnits, perRank };
    return this.cached;
  }
}

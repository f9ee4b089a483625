// Which rows each micro-batch of an optimizer step holds — one function for the single-process
// trainer and the coordinator's data feed, so N workers and one process train on the same
// micro-batches' union every step. Token datasets are grouped and balanced by length when
// batch.group_by_length is on (src/data/sampler.ts dealByLength); images and latents, all one
// size, are dealt round-robin.
import type { RecordBatch } from 'apache-arrow';
import type { RunConfig } from '../config/index.js';
import type { Dataset } from './arrow-file.js';
import { takeRows } from './arrow.js';
import { dealByLength, dealRoundRobin, globalBatchSamples, type Assignment } from './sampler.js';

export interface DealtMicroBatch extends Assignment {
  rows: RecordBatch;
}

export function dealStep(train: Dataset, cfg: Pick<RunConfig, 'batch' | 'seed'>, samplesSeen: number, liveRanks: number[]): DealtMicroBatch[] {
  const spec = { epochSize: train.numRows, globalBatch: cfg.batch.global, seed: cfg.seed, samplesSeen, micro: cfg.batch.micro, liveRanks };
  if (!(cfg.batch.group_by_length && train.info.kind === 'lm')) {
    return dealRoundRobin(spec).map((a) => ({ ...a, rows: train.rows(a.samples.map((s) => s.index)) }));
  }
  // The global batch is read once: its length column orders the deal, and the micro-batches are
  // taken from it by position.
  const all = globalBatchSamples(spec);
  const rows = train.rows(all.map((s) => s.index));
  const column = rows.getChild('length');
  const at = new Map(all.map((s, i) => [s.position, i]));
  const deal = dealByLength(spec, (s) => Number(column?.get(at.get(s.position)!) ?? 0));
  return deal.map((a) => ({ ...a, rows: takeRows(rows, a.samples.map((s) => at.get(s.position)!)) }));
}

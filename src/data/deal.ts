// Which rows each micro-batch of an optimizer step holds — one function for the single-process
// trainer and the coordinator's data feed, so N workers and one process train on the same
// micro-batches' union every step. Token datasets are grouped and balanced by length when
// batch.group_by_length is on (src/data/sampler.ts dealByLength); images and latents, all one
// size, are dealt round-robin.
import type { RecordBatch } from 'apache-arrow';
import type { RunConfig } from '../config.js';
import type { Dataset } from './arrow-file.js';
import { dealByLength, dealRoundRobin, type Assignment } from './sampler.js';

export interface DealtMicroBatch extends Assignment {
  rows: RecordBatch;
}

export function dealStep(train: Dataset, cfg: Pick<RunConfig, 'batch' | 'seed'>, samplesSeen: number, liveRanks: number[]): DealtMicroBatch[] {
  const spec = { epochSize: train.numRows, globalBatch: cfg.batch.global, seed: cfg.seed, samplesSeen, micro: cfg.batch.micro, liveRanks };
  let deal: Assignment[];
  if (cfg.batch.group_by_length && train.info.kind === 'lm') {
    const all = dealRoundRobin(spec).flatMap((a) => a.samples);
    const column = train.rows(all.map((s) => s.index)).getChild('length');
    const length = new Map(all.map((s, i) => [s.position, Number(column?.get(i) ?? 0)]));
    deal = dealByLength(spec, (s) => length.get(s.position) ?? 0);
  } else {
    deal = dealRoundRobin(spec);
  }
  return deal.map((a) => ({ ...a, rows: train.rows(a.samples.map((s) => s.index)) }));
}

// Data order that survives failures (docs/architecture.md#one-training-step). The position in the data is one global
// counter, `samples_seen`; stream position p lies in epoch ⌊p / U⌋ at slot p mod U of that epoch's
// seeded permutation, where U = ⌊epochSize / globalBatch⌋ · globalBatch. The last partial global batch
// of every epoch is dropped (each epoch drops different samples, since each has its own permutation),
// so every optimizer step sees exactly `globalBatch` samples and an epoch is a whole number of steps.
//
// A global batch is the G consecutive stream positions from samples_seen. Its micro-batches are
// numbered q = 0 … G/micro − 1 (micro-batch q holds positions q·micro … q·micro + micro − 1);
// micro-batch q goes to liveRanks[q mod L] as that rank's accumulation step ⌊q / L⌋. With all W
// workers alive this is rank q mod W, accumulation ⌊q / W⌋. Which samples form a global batch never
// depends on the worker count, so a resume with a different number of workers continues at exactly
// the next sample.
import { UserError } from '../errors.js';
import { Rng, mixSeed } from '../nn/rng.js';

export { Rng };

export interface StreamSpec {
  /** Rows in the training split. */
  epochSize: number;
  globalBatch: number;
  seed: number;
}

export interface SampleRef {
  /** Global stream position (the value of samples_seen before this sample). */
  position: number;
  epoch: number;
  /** Row index in the dataset. */
  index: number;
}

/** Optimizer steps per epoch (the partial last global batch is dropped). */
export function stepsPerEpoch(epochSize: number, globalBatch: number): number {
  if (!(globalBatch > 0) || !Number.isInteger(globalBatch)) throw new UserError(`global batch must be a positive integer, got ${globalBatch}`);
  const steps = Math.floor(epochSize / globalBatch);
  if (steps === 0) throw new UserError(`the training split has ${epochSize} rows, fewer than one global batch of ${globalBatch}`);
  return steps;
}

/** Accumulation steps per optimizer step; an indivisible combination is a config error. */
export function accumulationSteps(globalBatch: number, micro: number, workers: number): number {
  const per = micro * workers;
  if (!(micro > 0 && workers > 0) || globalBatch % per !== 0) {
    throw new UserError(`batch.global ${globalBatch} is not divisible by workers × batch.micro = ${workers} × ${micro}`);
  }
  return globalBatch / per;
}

const permCache = new Map<string, Uint32Array>();

/** Epoch `epoch`'s permutation of 0..epochSize-1, seeded by (seed, epoch). */
function epochPermutation(seed: number, epoch: number, epochSize: number): Uint32Array {
  const key = `${seed}/${epoch}/${epochSize}`;
  let p = permCache.get(key);
  if (!p) {
    p = Rng.from(mixSeed(seed, 0x5a3d1e), epoch).permutation(epochSize);
    permCache.set(key, p);
    // A step touches at most two epochs; keep a few for ranks of one process sharing the cache.
    if (permCache.size > 4) permCache.delete(permCache.keys().next().value!);
  }
  return p;
}

export function sampleAt(position: number, spec: StreamSpec): SampleRef {
  if (!Number.isSafeInteger(position) || position < 0) throw new RangeError(`stream position ${position}`);
  const used = stepsPerEpoch(spec.epochSize, spec.globalBatch) * spec.globalBatch;
  const epoch = Math.floor(position / used);
  const index = epochPermutation(spec.seed, epoch, spec.epochSize)[position - epoch * used]!;
  return { position, epoch, index };
}

/** The G samples of the global batch that starts at `samplesSeen`, in stream order. */
export function globalBatchSamples(spec: StreamSpec & { samplesSeen: number }): SampleRef[] {
  return Array.from({ length: spec.globalBatch }, (_, j) => sampleAt(spec.samplesSeen + j, spec));
}

export interface Assignment {
  rank: number;
  accumIndex: number;
  samples: SampleRef[];
}

/** Every micro-batch of the global batch at `samplesSeen`, dealt round-robin over `liveRanks`. */
export function dealRoundRobin(spec: StreamSpec & { samplesSeen: number; micro: number; liveRanks: number[] }): Assignment[] {
  const { globalBatch, micro, liveRanks } = spec;
  if (liveRanks.length === 0) throw new RangeError('no live ranks');
  if (!(micro > 0) || globalBatch % micro !== 0) throw new UserError(`batch.global ${globalBatch} is not divisible by batch.micro ${micro}`);
  const all = globalBatchSamples(spec);
  const out: Assignment[] = [];
  for (let q = 0; q < globalBatch / micro; q++) {
    out.push({
      rank: liveRanks[q % liveRanks.length]!,
      accumIndex: Math.floor(q / liveRanks.length),
      samples: all.slice(q * micro, (q + 1) * micro),
    });
  }
  return out;
}

export interface MicroBatchArgs extends StreamSpec {
  samplesSeen: number;
  micro: number;
  workers: number;
  rank: number;
  accumIndex: number;
}

/** The samples of micro-batch (rank, accumIndex) of the global batch at `samplesSeen`, all W workers alive. */
export function microBatchSamples(a: MicroBatchArgs): SampleRef[] {
  const accum = accumulationSteps(a.globalBatch, a.micro, a.workers);
  if (a.rank < 0 || a.rank >= a.workers || a.accumIndex < 0 || a.accumIndex >= accum) {
    throw new RangeError(`rank ${a.rank} / accumulation ${a.accumIndex} outside ${a.workers} workers × ${accum} steps`);
  }
  const q = a.accumIndex * a.workers + a.rank;
  return Array.from({ length: a.micro }, (_, k) => sampleAt(a.samplesSeen + q * a.micro + k, a));
}

export function microBatchIndices(a: MicroBatchArgs): number[] {
  return microBatchSamples(a).map((s) => s.index);
}

/**
 * The global batch's micro-batches grouped and balanced by length (HF's group_by_length, within one
 * step): the G samples sorted longest first are dealt to the live ranks in snake order (0 … L−1,
 * L−1 … 0, …), each rank taking as many samples as its round-robin share of micro-batches holds,
 * and each rank cuts its samples, still longest first, into micro-batches. So every rank pads to
 * nearly the same length (no rank waits on another's longer batch at the all-reduce) and the
 * micro-batches of one rank hold similar lengths (less padding). The step's set of samples, and so
 * its summed gradient, is exactly the round-robin one; only which micro-batch holds which differs.
 */
export function dealByLength(spec: StreamSpec & { samplesSeen: number; micro: number; liveRanks: number[] }, lengthOf: (s: SampleRef) => number): Assignment[] {
  const plain = dealRoundRobin(spec);
  const L = spec.liveRanks.length;
  const sorted = plain.flatMap((a) => a.samples).map((s) => ({ s, len: lengthOf(s) }))
    .sort((a, b) => b.len - a.len || a.s.position - b.s.position).map((x) => x.s);
  // Rank slot r (index into liveRanks) holds count[r] micro-batches, as round-robin gives it.
  const capacity = spec.liveRanks.map((_, r) => plain.filter((_, q) => q % L === r).length * spec.micro);
  const mine: SampleRef[][] = spec.liveRanks.map(() => []);
  let r = 0;
  let dir = 1;
  for (const s of sorted) {
    while (mine[r]!.length >= capacity[r]!) [r, dir] = snake(r, dir, L);
    mine[r]!.push(s);
    [r, dir] = snake(r, dir, L);
  }
  return plain.map((a, q) => {
    const slot = q % L;
    const k = Math.floor(q / L);
    return { rank: a.rank, accumIndex: a.accumIndex, samples: mine[slot]!.slice(k * spec.micro, (k + 1) * spec.micro) };
  });
}

/** The next slot in snake order 0 … L−1, L−1 … 0, 0 … */
function snake(r: number, dir: number, L: number): [number, number] {
  const next = r + dir;
  if (next >= L) return [L - 1, -1];
  if (next < 0) return [0, 1];
  return [next, dir];
}

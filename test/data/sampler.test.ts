import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Rng, accumulationSteps, dealByLength, dealRoundRobin, globalBatchSamples, microBatchIndices, microBatchSamples, stepsPerEpoch,
} from '../../src/data/sampler.js';
import { UserError } from '../../src/errors.js';

const spec = { epochSize: 101, globalBatch: 24, seed: 7 };
const MICRO = 2;

/** What W workers consume for the step at samplesSeen: every (rank, accumulation) slot, with its owner. */
function stepOf(samplesSeen: number, workers: number): { rank: number; indices: number[] }[] {
  const accum = accumulationSteps(spec.globalBatch, MICRO, workers);
  const out: { rank: number; indices: number[] }[] = [];
  for (let a = 0; a < accum; a++) {
    for (let rank = 0; rank < workers; rank++) {
      out.push({ rank, indices: microBatchIndices({ ...spec, samplesSeen, micro: MICRO, workers, rank, accumIndex: a }) });
    }
  }
  return out;
}

void test('PRNG is deterministic and roughly uniform', () => {
  const a = Rng.from(1, 2);
  const b = Rng.from(1, 2);
  const xs = Array.from({ length: 1000 }, () => a.float());
  assert.deepEqual(xs, Array.from({ length: 1000 }, () => b.float()));
  assert.notDeepEqual(xs.slice(0, 10), Array.from({ length: 10 }, () => Rng.from(1, 3).float()));
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.05);
  const p = new Rng(5).permutation(50);
  assert.deepEqual([...p].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i));
});

for (const workers of [1, 2, 3, 4]) {
  void test(`${workers} worker(s): ranks disjoint, union = the single-process global batch`, () => {
    const steps = stepsPerEpoch(spec.epochSize, spec.globalBatch);
    assert.equal(steps, 4);
    for (let s = 0; s < steps + 2; s++) {
      const samplesSeen = s * spec.globalBatch;
      const single = globalBatchSamples({ ...spec, samplesSeen }).map((x) => x.index);
      const slots = stepOf(samplesSeen, workers);
      const perRank = Array.from({ length: workers }, (_, r) => slots.filter((x) => x.rank === r).flatMap((x) => x.indices));
      const all = perRank.flat();
      assert.equal(new Set(all).size, all.length, 'no sample twice in a step');
      assert.deepEqual([...all].sort((a, b) => a - b), [...single].sort((a, b) => a - b));
      // Slot order is stream order: micro-batch q is positions q·micro … of the global batch.
      const byQ = slots.map((x, k) => ({ ...x, k })).sort((x, y) => x.k - y.k).flatMap((x) => x.indices);
      assert.deepEqual(byQ, single);
      for (const r of perRank) assert.equal(r.length, spec.globalBatch / workers);
    }
  });
}

void test('one epoch is a permutation minus the dropped partial batch; the next epoch reshuffles', () => {
  const used = stepsPerEpoch(spec.epochSize, spec.globalBatch) * spec.globalBatch;
  const e0 = Array.from({ length: used / spec.globalBatch }, (_, s) => globalBatchSamples({ ...spec, samplesSeen: s * spec.globalBatch })).flat();
  assert.ok(e0.every((x) => x.epoch === 0));
  assert.equal(new Set(e0.map((x) => x.index)).size, used);
  const e1 = globalBatchSamples({ ...spec, samplesSeen: used });
  assert.ok(e1.every((x) => x.epoch === 1));
  assert.notDeepEqual(e1.map((x) => x.index), e0.slice(0, spec.globalBatch).map((x) => x.index));
});

void test('resume mid-epoch with another worker count continues at exactly the next sample', () => {
  const used = stepsPerEpoch(spec.epochSize, spec.globalBatch) * spec.globalBatch;
  const reference = Array.from({ length: 2 * used }, (_, p) => globalBatchSamples({ ...spec, samplesSeen: p - (p % spec.globalBatch) })[p % spec.globalBatch]!.index);
  for (const [before, after] of [[1, 3], [4, 2], [2, 1], [3, 4]] as const) {
    for (const stopAt of [1, 2, 3, 5]) {
      const seen: number[] = [];
      let samplesSeen = 0;
      for (let s = 0; s < 8; s++) {
        const workers = s < stopAt ? before : after;
        const step = stepOf(samplesSeen, workers);
        // Consumption order within a step: accumulation index, then rank (any order gives the same set).
        seen.push(...step.flatMap((x) => x.indices));
        samplesSeen += spec.globalBatch;
      }
      assert.deepEqual(seen, reference.slice(0, seen.length), `${before}→${after} workers at step ${stopAt}`);
      const epoch0 = seen.slice(0, used);
      assert.equal(new Set(epoch0).size, used, 'none repeated within the epoch');
    }
  }
});

void test('after a lost worker, micro-batches are dealt round-robin over the live ranks; the global batch is unchanged', () => {
  const samplesSeen = 48;
  const full = dealRoundRobin({ ...spec, samplesSeen, micro: MICRO, liveRanks: [0, 1, 2, 3] });
  full.forEach((a) => assert.deepEqual(a.samples.map((x) => x.index),
    microBatchIndices({ ...spec, samplesSeen, micro: MICRO, workers: 4, rank: a.rank, accumIndex: a.accumIndex })));
  const degraded = dealRoundRobin({ ...spec, samplesSeen, micro: MICRO, liveRanks: [0, 2, 3] });
  assert.deepEqual(new Set(degraded.map((a) => a.rank)), new Set([0, 2, 3]));
  assert.deepEqual(degraded.flatMap((a) => a.samples.map((x) => x.index)), globalBatchSamples({ ...spec, samplesSeen }).map((x) => x.index));
  assert.deepEqual(degraded.filter((a) => a.rank === 0).map((a) => a.accumIndex), [0, 1, 2, 3]);
  const s = microBatchSamples({ ...spec, samplesSeen, micro: MICRO, workers: 2, rank: 1, accumIndex: 0 });
  assert.deepEqual(s.map((x) => x.position), [50, 51]);
});

void test('an indivisible batch or a too-small dataset is a config error', () => {
  assert.throws(() => accumulationSteps(24, 5, 1), UserError);
  assert.throws(() => accumulationSteps(24, 2, 5), UserError);
  assert.throws(() => stepsPerEpoch(10, 24), UserError);
  assert.equal(accumulationSteps(128, 4, 16), 2);
});

void test('dealByLength: the same samples as round-robin, each rank its share, micro-batches longest first, ranks balanced', () => {
  const samplesSeen = 24;
  // Lengths with a wide spread, a function of the dataset row as a real length column is.
  const lengthOf = (x: { index: number }): number => 100 + ((x.index * 37) % 101);
  for (const liveRanks of [[0], [0, 1], [0, 1, 2, 3], [0, 2, 3]]) {
    const plain = dealRoundRobin({ ...spec, samplesSeen, micro: MICRO, liveRanks });
    const dealt = dealByLength({ ...spec, samplesSeen, micro: MICRO, liveRanks }, lengthOf);
    const ids = (d: typeof plain) => d.flatMap((a) => a.samples.map((x) => x.index)).sort((a, b) => a - b);
    assert.deepEqual(ids(dealt), ids(plain), 'the same global batch');
    assert.deepEqual(dealt.map((a) => [a.rank, a.accumIndex, a.samples.length]), plain.map((a) => [a.rank, a.accumIndex, a.samples.length]), 'the same slots');
    for (const rank of liveRanks) {
      const mine = dealt.filter((a) => a.rank === rank).sort((a, b) => a.accumIndex - b.accumIndex).flatMap((a) => a.samples.map(lengthOf));
      assert.deepEqual(mine, [...mine].sort((a, b) => b - a), `rank ${rank}: longest first`);
    }
    // Each rank's longest sample is among the L longest of the batch: every rank pads alike.
    const top = plain.flatMap((a) => a.samples.map(lengthOf)).sort((a, b) => b - a);
    const firsts = liveRanks.map((r) => lengthOf(dealt.find((a) => a.rank === r && a.accumIndex === 0)!.samples[0]!));
    assert.ok(Math.min(...firsts) >= top[liveRanks.length - 1]!, `ranks ${JSON.stringify(liveRanks)} start at ${firsts} (top ${top.slice(0, 4)})`);
  }
  // Padded cost (rows × longest row) per rank: balanced to within one micro-batch's spread.
  const two = dealByLength({ ...spec, samplesSeen, micro: MICRO, liveRanks: [0, 1] }, lengthOf);
  const cost = (r: number) => two.filter((a) => a.rank === r).reduce((n, a) => n + a.samples.length * Math.max(...a.samples.map(lengthOf)), 0);
  const rr = dealRoundRobin({ ...spec, samplesSeen, micro: MICRO, liveRanks: [0, 1] });
  const rrCost = (r: number) => rr.filter((a) => a.rank === r).reduce((n, a) => n + a.samples.length * Math.max(...a.samples.map(lengthOf)), 0);
  assert.ok(Math.abs(cost(0) - cost(1)) <= Math.abs(rrCost(0) - rrCost(1)) + 2 * MICRO, `by length ${cost(0)}/${cost(1)}, round-robin ${rrCost(0)}/${rrCost(1)}`);
  assert.ok(cost(0) + cost(1) <= rrCost(0) + rrCost(1), 'less padding in all');
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AllReduceTimeoutError,
  RING_THRESHOLD_ELEMENTS,
  allReduceSum,
  chooseAlgorithm,
  chunkBounds,
  referenceSum,
} from '../../src/comm/allreduce.js';
import { createInMemoryGroup } from '../../src/comm/memory.js';
import { RunError } from '../../src/errors.js';

/** Values of mixed magnitude so that a different summation order gives different bits. */
function contribution(rank: number, len: number, seed: number): Float32Array {
  const out = new Float32Array(len);
  let s = (seed * 7919 + rank * 104729 + 1) >>> 0;
  for (let i = 0; i < len; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) - 0.5) * 10 ** ((s % 7) - 3);
  }
  return out;
}

const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

async function runGroup(n: number, len: number, algorithm: 'ring' | 'direct', step = 0): Promise<{ outs: Float32Array[]; ins: Float32Array[] }> {
  const group = createInMemoryGroup(n);
  const ins = group.map((t) => contribution(t.rank, len, len + n));
  const outs = ins.map((x) => x.slice());
  await Promise.all(group.map((t) => allReduceSum(t, outs[t.rank], step, { algorithm, timeoutMs: 5000 })));
  await Promise.all(group.map((t) => t.close()));
  return { outs, ins };
}

void describe('chunkBounds', () => {
  void it('covers the buffer with chunks differing by at most one element', () => {
    for (const [len, n] of [[10, 3], [2, 5], [0, 4], [17, 4]]) {
      let at = 0;
      for (let c = 0; c < n; c++) {
        const [a, b] = chunkBounds(len, n, c);
        assert.equal(a, at);
        assert.ok(b - a === Math.floor(len / n) || b - a === Math.ceil(len / n));
        at = b;
      }
      assert.equal(at, len);
    }
  });
});

void describe('allReduceSum on an in-memory group', () => {
  for (const algorithm of ['ring', 'direct'] as const) {
    for (const n of [1, 2, 3, 4, 5]) {
      for (const len of [1, 3, 7, 101, 1000]) {
        void it(`${algorithm}, n=${n}, ${len} floats: every rank holds the documented-order sum, bit for bit`, async () => {
          const { outs, ins } = await runGroup(n, len, algorithm);
          const want = bits(referenceSum(ins, algorithm));
          for (const out of outs) assert.deepEqual(bits(out), want);
        });
      }
    }
  }

  void it('the orders really differ: ring and direct disagree in some bits on 5 ranks (so the tests above can fail)', async () => {
    const a = await runGroup(5, 1000, 'ring');
    const b = await runGroup(5, 1000, 'direct');
    assert.notDeepEqual(bits(a.outs[0]), bits(b.outs[0]));
  });

  void it('repeated runs are bit-identical', async () => {
    const a = await runGroup(4, 999, 'ring');
    const b = await runGroup(4, 999, 'ring');
    assert.deepEqual(bits(a.outs[2]), bits(b.outs[2]));
  });

  void it('counts payload bytes: the ring sends 2(n-1)/n of the buffer per rank, direct (n-1) times it', async () => {
    const n = 4;
    const len = 1000;
    for (const [algorithm, perRank] of [['ring', 2 * (n - 1) * (len / n) * 4], ['direct', (n - 1) * len * 4]] as const) {
      const group = createInMemoryGroup(n);
      const bufs = group.map((t) => contribution(t.rank, len, 1));
      await Promise.all(group.map((t) => allReduceSum(t, bufs[t.rank], 3, { algorithm })));
      for (const t of group) {
        assert.equal(t.stats.bytesSent, perRank);
        assert.equal(t.stats.bytesReceived, perRank);
      }
    }
  });

  void it('auto picks direct below the measured threshold and the ring from it on (n > 2)', () => {
    assert.equal(chooseAlgorithm(RING_THRESHOLD_ELEMENTS - 1, 4), 'direct');
    assert.equal(chooseAlgorithm(RING_THRESHOLD_ELEMENTS, 4), 'ring');
    assert.equal(chooseAlgorithm(10 * RING_THRESHOLD_ELEMENTS, 2), 'direct');
  });

  void it('consecutive steps without a barrier: messages arriving early for a later step are buffered by tag', async () => {
    const group = createInMemoryGroup(3);
    const seen: number[][][] = group.map(() => []);
    // Each rank runs its own loop of steps; rank 0 starts at once, the others a few ticks later,
    // so some messages of step k+1 reach a rank still inside step k.
    await Promise.all(
      group.map(async (t) => {
        for (let i = 0; i < t.rank * 3; i++) await new Promise((r) => setImmediate(r));
        for (let step = 0; step < 5; step++) {
          const b = new Float32Array(10).fill(t.rank + step);
          await allReduceSum(t, b, step, { algorithm: step % 2 ? 'ring' : 'direct' });
          seen[t.rank].push([...b]);
        }
      }),
    );
    for (const rows of seen) rows.forEach((row, step) => assert.deepEqual(row, new Array(10).fill(3 + 3 * step)));
  });

  void it('a silent peer fails the step with a RunError naming the late rank and the step', async () => {
    const group = createInMemoryGroup(3);
    const bufs = group.map(() => new Float32Array(8).fill(1));
    // rank 2 never joins step 12
    const results = await Promise.allSettled([0, 1].map((r) => allReduceSum(group[r], bufs[r], 12, { algorithm: 'direct', timeoutMs: 200 })));
    for (const res of results) {
      assert.equal(res.status, 'rejected');
      const err = (res as PromiseRejectedResult).reason as AllReduceTimeoutError;
      assert.ok(err instanceof RunError);
      assert.equal(err.lateRank, 2);
      assert.equal(err.step, 12);
      assert.match(err.message, /^all-reduce step 12: no chunk 0 from rank 2 after 0\.2 s$/);
    }
    await Promise.all(group.map((t) => t.close()));
  });

  void it('mismatched buffer sizes are an error, not garbage', async () => {
    const group = createInMemoryGroup(2);
    const bufs = [new Float32Array(4), new Float32Array(5)];
    const res = await Promise.allSettled(group.map((t) => allReduceSum(t, bufs[t.rank], 0, { timeoutMs: 1000 })));
    assert.ok(res.every((r) => r.status === 'rejected'));
  });
});

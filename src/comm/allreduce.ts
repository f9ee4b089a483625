// Sum all-reduce of one fused Float32 gradient buffer, as chunk arithmetic over a Transport
// (docs/internals.md#all-reduce-over-a-transport; after tinygrad's allreduce.py). Two algorithms:
//
// - direct (small buffers, one round): every rank sends its whole buffer to every other rank and
//   sums the n contributions in rank order, ((x0 + x1) + x2) + … + x(n-1).
// - ring (large buffers): reduce-scatter then all-gather over n chunks, each rank sending
//   2(n-1)/n of the buffer in 2(n-1) rounds. Chunk c starts its accumulation at rank c+1 and
//   travels the ring, so it is summed as ((x(c+1) + x(c+2)) + …) + x(c), ranks mod n, and ends,
//   fully reduced, at rank c. A ring cannot start every chunk at rank 0 without idling its links,
//   so the order is fixed relative to the chunk instead: for a given world size and buffer length
//   every element is always summed in the same order, every rank receives the owner's bits, and
//   repeated runs are bit-identical. `referenceSum` spells out both orders for the tests.
//
// Message tags: direct uses chunk 0; the ring uses chunk c in reduce-scatter and n + c in
// all-gather (a rank sends some chunks in both phases).
import { RunError } from '../errors.js';
import { PeerTimeoutError, type Transport } from './transport.js';

/**
 * Buffers of at least this many float32 elements use the ring (n > 2), smaller ones direct.
 * Measured with `onelora bench allreduce` (src/bench/allreduce.ts), 2-core VM,
 * loopback ZeroMQ, two runs, ms direct/ring: 16 KiB 5.7/17.0 (4 procs), 40.6/91.4 (8);
 * 256 KiB 17.5/5.8 (4), 42.7/21.6 (8); 64-128 KiB flips between runs. Table: docs/distributed.md.
 */
export const RING_THRESHOLD_ELEMENTS = 32 * 1024;

export type AllReduceAlgorithm = 'auto' | 'ring' | 'direct';

export interface AllReduceOptions {
  /** How long to wait for any one peer's message beyond its transfer allowance (docs/config.md distributed.allreduce_timeout_s). */
  timeoutMs?: number;
  /**
   * Transfer allowance in ms per MiB that has to arrive (distributed.allreduce_s_per_mib × 1000):
   * a slow but live link must not look dead because its message is large. Default 0.
   */
  msPerMiB?: number;
  algorithm?: AllReduceAlgorithm;
}

/**
 * The wait for one receive: the silence allowance plus the time `bytes` take at the slowest link
 * speed the job allows for. Direct receives the whole buffer from every peer at once over this
 * rank's one link, so its `bytes` is (n − 1) buffers; a ring round receives one chunk.
 */
function receiveTimeoutMs(baseMs: number, msPerMiB: number, bytes: number): number {
  return baseMs + (msPerMiB * bytes) / 2 ** 20;
}

const DEFAULT_ALLREDUCE_TIMEOUT_MS = 60_000;

/** The algorithm `auto` picks for a buffer of `length` elements on `size` ranks. */
export function chooseAlgorithm(length: number, size: number): 'ring' | 'direct' {
  // With two ranks both algorithms send the same bytes per rank (B), and direct does it in one round.
  return size > 2 && length >= RING_THRESHOLD_ELEMENTS ? 'ring' : 'direct';
}

/** Chunk c of n over `length` elements: sizes differ by at most one, the first `length % n` are longer. */
export function chunkBounds(length: number, n: number, c: number): [start: number, end: number] {
  const base = Math.floor(length / n);
  const extra = length % n;
  const start = c * base + Math.min(c, extra);
  return [start, start + base + (c < extra ? 1 : 0)];
}

/**
 * Sums `buf` over all ranks of the transport, in place. `step` tags the messages (the optimizer
 * step); a peer that stays silent for `timeoutMs` fails the call with a RunError naming it.
 */
export async function allReduceSum(t: Transport, buf: Float32Array, step: number, opts: AllReduceOptions = {}): Promise<void> {
  if (t.size === 1) return;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_ALLREDUCE_TIMEOUT_MS;
  const algo = !opts.algorithm || opts.algorithm === 'auto' ? chooseAlgorithm(buf.length, t.size) : opts.algorithm;
  const perMiB = opts.msPerMiB ?? 0;
  try {
    if (algo === 'ring') await ringAllReduce(t, buf, step, receiveTimeoutMs(timeoutMs, perMiB, 4 * Math.ceil(buf.length / t.size)));
    else await directAllReduce(t, buf, step, receiveTimeoutMs(timeoutMs, perMiB, 4 * buf.length * (t.size - 1)));
  } catch (err) {
    if (err instanceof PeerTimeoutError) {
      throw new AllReduceTimeoutError(err, t.rank);
    }
    throw err;
  }
}

/** "all-reduce step 12: no chunk 3 from rank 5 after 60 s", with the late rank as a field. */
export class AllReduceTimeoutError extends RunError {
  readonly lateRank: number;
  readonly step: number;
  constructor(cause: PeerTimeoutError, readonly atRank: number) {
    super(`all-reduce ${cause.message}`, { cause });
    this.name = 'AllReduceTimeoutError';
    this.lateRank = cause.rank;
    this.step = cause.step;
  }
}

async function directAllReduce(t: Transport, buf: Float32Array, step: number, timeoutMs: number): Promise<void> {
  const n = t.size;
  const tag = { step, sender: t.rank, chunk: 0 };
  const sends: Promise<void>[] = [];
  for (let p = 0; p < n; p++) if (p !== t.rank) sends.push(t.send(p, tag, buf));
  const recvs: Promise<Float32Array>[] = [];
  for (let p = 0; p < n; p++) {
    recvs.push(p === t.rank ? Promise.resolve(buf) : t.recv(p, { step, sender: p, chunk: 0 }, timeoutMs));
  }
  const [, parts] = await Promise.all([Promise.all(sends), Promise.all(recvs)]);
  for (const [p, part] of parts.entries()) {
    if (part.length !== buf.length) {
      throw new RunError(`all-reduce step ${step}: rank ${p} sent ${part.length} floats, rank ${t.rank} has ${buf.length}`);
    }
  }
  const acc = parts[0].slice();
  for (let p = 1; p < n; p++) addInto(acc, parts[p], 0, acc.length);
  buf.set(acc);
}

async function ringAllReduce(t: Transport, buf: Float32Array, step: number, timeoutMs: number): Promise<void> {
  const n = t.size;
  const r = t.rank;
  const next = (r + 1) % n;
  const prev = (r + n - 1) % n;
  const mod = (x: number): number => ((x % n) + n) % n;
  const view = (c: number): Float32Array => buf.subarray(...chunkBounds(buf.length, n, c));

  // Reduce-scatter: in round s rank r forwards its partial sum of chunk r-s-1 and adds its own
  // data to the partial of chunk r-s-2 arriving from r-1; after n-1 rounds it owns chunk r.
  for (let s = 0; s < n - 1; s++) {
    const out = mod(r - s - 1);
    const inc = mod(r - s - 2);
    const [, got] = await Promise.all([
      t.send(next, { step, sender: r, chunk: out }, view(out)),
      t.recv(prev, { step, sender: prev, chunk: inc }, timeoutMs),
    ]);
    const dst = view(inc);
    checkLength(got, dst.length, step, prev, t.rank);
    // got holds x(inc+1) + … + x(r-1); adding x(r) keeps the documented order (a + b == b + a in IEEE).
    addInto(dst, got, 0, dst.length);
  }
  // All-gather: the owner's bits travel the ring unchanged.
  for (let s = 0; s < n - 1; s++) {
    const out = mod(r - s);
    const inc = mod(r - s - 1);
    const [, got] = await Promise.all([
      t.send(next, { step, sender: r, chunk: n + out }, view(out)),
      t.recv(prev, { step, sender: prev, chunk: n + inc }, timeoutMs),
    ]);
    const dst = view(inc);
    checkLength(got, dst.length, step, prev, t.rank);
    dst.set(got);
  }
}

function checkLength(got: Float32Array, want: number, step: number, from: number, rank: number): void {
  if (got.length !== want) {
    throw new RunError(`all-reduce step ${step}: rank ${from} sent a chunk of ${got.length} floats, rank ${rank} expected ${want} (buffer sizes differ)`);
  }
}

/** dst[i] = dst[i] + src[i] in float32 (a Float32Array store rounds the double sum exactly once). */
function addInto(dst: Float32Array, src: Float32Array, from: number, to: number): void {
  for (let i = from; i < to; i++) dst[i] += src[i];
}

/**
 * The documented summation order, sequentially: what every rank must hold, bit for bit, after
 * allReduceSum of `contributions` (index = rank) with that algorithm.
 */
export function referenceSum(contributions: readonly Float32Array[], algorithm: 'ring' | 'direct'): Float32Array {
  const n = contributions.length;
  const len = contributions[0].length;
  const out = new Float32Array(len);
  if (algorithm === 'direct' || n === 1) {
    out.set(contributions[0]);
    for (let p = 1; p < n; p++) addInto(out, contributions[p], 0, len);
    return out;
  }
  for (let c = 0; c < n; c++) {
    const [a, b] = chunkBounds(len, n, c);
    const first = (c + 1) % n;
    out.set(contributions[first].subarray(a, b), a);
    for (let k = 2; k <= n; k++) addInto(out, contributions[(c + k) % n], a, b);
  }
  return out;
}

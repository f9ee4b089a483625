// One rank of `onelora bench allreduce`, forked by src/bench/allreduce.ts with an IPC
// channel: it binds a ZeroMQ transport on loopback, reports its endpoint, receives everyone's,
// runs the cases it is given and sends back rank-local timings.
import { allReduceSum } from '../comm/allreduce.js';
import { ZmqTransport } from '../comm/zmq.js';

export interface BenchCase {
  elements: number;
  algorithm: 'auto' | 'ring' | 'direct';
  iterations: number;
}

export interface BenchCaseResult extends BenchCase {
  /** Mean wall time of one all-reduce on this rank, ms. */
  ms: number;
  bytesSent: number;
}

export type ParentMessage = { type: 'peers'; endpoints: string[]; cases: BenchCase[] };
export type ChildMessage =
  | { type: 'endpoint'; rank: number; endpoint: string }
  | { type: 'results'; rank: number; results: BenchCaseResult[] }
  | { type: 'error'; rank: number; message: string };

const TIMEOUT_MS = Number(process.env.ONELORA_BENCH_TIMEOUT_MS ?? 120_000);

async function runCases(t: ZmqTransport, cases: BenchCase[]): Promise<BenchCaseResult[]> {
  let step = 0;
  const barrier = new Float32Array(1);
  const results: BenchCaseResult[] = [];
  for (const c of cases) {
    const buf = new Float32Array(c.elements).fill(1 / t.size);
    const opts = { algorithm: c.algorithm, timeoutMs: TIMEOUT_MS };
    await allReduceSum(t, barrier, step++, { algorithm: 'direct', timeoutMs: TIMEOUT_MS });
    await allReduceSum(t, buf, step++, opts); // warm-up: connections, allocations, JIT
    const sentBefore = t.stats.bytesSent;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < c.iterations; i++) await allReduceSum(t, buf, step++, opts);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6 / c.iterations;
    results.push({ ...c, ms, bytesSent: (t.stats.bytesSent - sentBefore) / c.iterations });
  }
  return results;
}

async function main(): Promise<void> {
  const [rank, size] = process.argv.slice(2).map(Number);
  const send = (m: ChildMessage): void => void process.send?.(m);
  const t = await ZmqTransport.bind({ rank, size, token: process.env.ONELORA_JOB_TOKEN ?? 'bench', sendTimeoutMs: TIMEOUT_MS });
  const peers = await new Promise<ParentMessage>((resolve) => {
    process.once('message', (m) => resolve(m as ParentMessage));
    send({ type: 'endpoint', rank, endpoint: t.endpoint });
  });
  try {
    t.connect(peers.endpoints);
    send({ type: 'results', rank, results: await runCases(t, peers.cases) });
  } catch (err) {
    send({ type: 'error', rank, message: `${(err as Error).message} (${JSON.stringify(t.stats)})` });
  } finally {
    await t.close();
    process.disconnect?.();
  }
}

await main();

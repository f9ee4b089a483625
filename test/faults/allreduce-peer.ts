// One rank of a two-rank ZeroMQ all-reduce for test/faults/slow-link.test.ts, run inside a network
// namespace: `node --import tsx allreduce-peer.ts RANK ENDPOINT0 ENDPOINT1 FLOATS TIMEOUT_MS MS_PER_MIB`.
// Binds its endpoint, connects to the other, sums FLOATS floats once, prints one JSON line.
import { allReduceSum } from '../../src/comm/allreduce.js';
import { ZmqTransport } from '../../src/comm/zmq.js';

const [rank, e0, e1, floats, timeoutMs, msPerMiB] = process.argv.slice(2);
const r = Number(rank);
const endpoints = [e0!, e1!];
const port = /:(\d+)$/.exec(endpoints[r]!)?.[1];
const t = await ZmqTransport.bind({ rank: r, size: 2, token: 'slow-link', bind: `tcp://0.0.0.0:${port}`, advertise: /tcp:\/\/([^:]+):/.exec(endpoints[r]!)?.[1] });
t.connect(endpoints);
const buf = new Float32Array(Number(floats)).fill(r + 1);
const t0 = performance.now();
try {
  await allReduceSum(t, buf, 1, { timeoutMs: Number(timeoutMs), msPerMiB: Number(msPerMiB), algorithm: 'direct' });
  process.stdout.write(JSON.stringify({ ok: buf.every((x) => x === 3), s: (performance.now() - t0) / 1000 }) + '\n');
} catch (err) {
  process.stdout.write(JSON.stringify({ ok: false, s: (performance.now() - t0) / 1000, error: (err as Error).message }) + '\n');
}
// Gracefully: an aborted close would drop what is still queued for the peer over the slow link.
await t.close({ drainMs: 15_000 });

// A peer endpoint nobody can reach fails the all-reduce within the transport's connect timeout,
// naming the endpoint and the rank that cannot reach it, instead of waiting out the all-reduce
// timeout and blaming the peer. Real ZeroMQ sockets on loopback.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { AllReduceTimeoutError, allReduceSum } from '../../src/comm/allreduce.js';
import { ZmqTransport } from '../../src/comm/zmq.js';

/** A port nothing listens on (bound and released at once): connections to it are refused. */
function refusedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

test('an endpoint that accepts no connection fails the all-reduce after the connect timeout, naming it', async () => {
  const port = await refusedPort();
  const t = await ZmqTransport.bind({ rank: 0, size: 2, token: 't', connectTimeoutMs: 1000 });
  try {
    t.connect([t.endpoint, `tcp://127.0.0.1:${port}`]);
    const t0 = performance.now();
    const err = await allReduceSum(t, new Float32Array(8), 3, { timeoutMs: 60_000 }).then(() => null, (e: unknown) => e);
    const waited = performance.now() - t0;
    assert.ok(err instanceof AllReduceTimeoutError, String(err));
    assert.equal(err.lateRank, 1);
    assert.equal(err.message, `all-reduce step 3: rank 1 advertised tcp://127.0.0.1:${port}, which rank 0 cannot reach (no connection within 1 s; check the worker's --advertise and firewalls)`);
    assert.ok(waited < 10_000, `failed after ${waited} ms, not the 60 s all-reduce timeout`);
  } finally {
    await t.close({ abort: true });
  }
});

test('a peer endpoint that is this rank\'s own port on loopback is refused at once', async () => {
  const t = await ZmqTransport.bind({ rank: 0, size: 2, token: 't', connectTimeoutMs: 30_000 });
  try {
    const own = t.endpoint.replace(/^tcp:\/\/[^:]+:/, 'tcp://127.0.0.1:');
    t.connect([t.endpoint, own]);
    const err = await allReduceSum(t, new Float32Array(8), 1, { timeoutMs: 60_000 }).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof AllReduceTimeoutError, String(err));
    assert.match(err.message, /rank 1 advertised tcp:\/\/127\.0\.0\.1:\d+, which rank 0 cannot reach \(it is rank 0's own port/);
  } finally {
    await t.close({ abort: true });
  }
});

test('a reachable peer is not reported: the all-reduce completes', async () => {
  const a = await ZmqTransport.bind({ rank: 0, size: 2, token: 't', connectTimeoutMs: 1000 });
  const b = await ZmqTransport.bind({ rank: 1, size: 2, token: 't', connectTimeoutMs: 1000 });
  try {
    a.connect([a.endpoint, b.endpoint]);
    b.connect([a.endpoint, b.endpoint]);
    // Past the connect timeout: a connected link stays usable.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const x = new Float32Array([1, 2]);
    const y = new Float32Array([3, 4]);
    await Promise.all([allReduceSum(a, x, 1), allReduceSum(b, y, 1)]);
    assert.deepEqual([...x], [4, 6]);
    assert.deepEqual([...y], [4, 6]);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

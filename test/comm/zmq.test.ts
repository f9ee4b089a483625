import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import * as zmq from 'zeromq';
import { allReduceSum, referenceSum, type AllReduceTimeoutError } from '../../src/comm/allreduce.js';
import { ZmqTransport, curveKeyPair, type CurveKeys } from '../../src/comm/zmq.js';

async function group(n: number, token = 'secret', curve?: (rank: number) => CurveKeys): Promise<ZmqTransport[]> {
  const g = await Promise.all(Array.from({ length: n }, (_, rank) => ZmqTransport.bind({ rank, size: n, token, curve: curve?.(rank) })));
  for (const t of g) t.connect(g.map((p) => p.endpoint));
  return g;
}

const ramp = (rank: number, len: number): Float32Array => Float32Array.from({ length: len }, (_, i) => Math.sin(i * 0.37 + rank) * 10 ** (rank % 3));

void describe('ZmqTransport on 127.0.0.1', () => {
  void it('three ranks in one process do a real ring and direct all-reduce; payload bytes are counted', async () => {
    const n = 3;
    const len = 10_001;
    const g = await group(n);
    try {
      assert.ok(g.every((t) => /^tcp:\/\/127\.0\.0\.1:\d+$/.test(t.endpoint)));
      for (const [step, algorithm] of [[1, 'ring'], [2, 'direct']] as const) {
        const ins = g.map((t) => ramp(t.rank, len));
        const bufs = ins.map((x) => x.slice());
        await Promise.all(g.map((t) => allReduceSum(t, bufs[t.rank], step, { algorithm, timeoutMs: 10_000 })));
        const want = referenceSum(ins, algorithm);
        for (const b of bufs) assert.deepEqual(new Uint32Array(b.buffer), new Uint32Array(want.buffer));
      }
      // ring: 2(n-1) chunks of ~len/n floats, direct: (n-1) whole buffers, per rank
      const total = g.reduce((s, t) => s + t.stats.bytesSent, 0);
      assert.equal(total, 2 * (n - 1) * len * 4 + n * (n - 1) * len * 4);
      assert.equal(g.reduce((s, t) => s + t.stats.bytesReceived, 0), total);
      assert.ok(g.every((t) => t.stats.messagesSent === 2 * (n - 1) + (n - 1)));
    } finally {
      await Promise.all(g.map((t) => t.close()));
    }
  });

  void it('a connection without the job token is refused before its routing id is bound; a wrong token in a message is dropped and counted', async () => {
    const g = await Promise.all([0, 1].map((rank) => ZmqTransport.bind({ rank, size: 3, token: 'right' })));
    for (const t of g) t.connect([g[0].endpoint, g[1].endpoint, 'tcp://127.0.0.1:9']);
    const header = Buffer.alloc(12);
    header.writeUInt32LE(5, 0);
    header.writeUInt32LE(2, 4);
    // no token (NULL security) and a wrong token (PLAIN): refused in the handshake, nothing arrives
    const stray = new zmq.Dealer({ linger: 0, routingId: '1' });
    const wrong = new zmq.Dealer({ linger: 0, routingId: '2', plainUsername: '2', plainPassword: 'wrong' });
    // the right token in the handshake, a wrong one in the message: dropped and counted
    const inner = new zmq.Dealer({ linger: 0, routingId: '2', plainUsername: '2', plainPassword: 'right' });
    try {
      for (const d of [stray, wrong]) {
        d.connect(g[0].endpoint);
        await d.send([Buffer.from('right'), header, Buffer.alloc(4)]);
      }
      await assert.rejects(g[0].recv(2, { step: 5, sender: 2, chunk: 0 }, 300), /no chunk 0 from rank 2 after 0\.3 s/);
      assert.equal(g[0].stats.rejected, 0);
      inner.connect(g[0].endpoint);
      await inner.send([Buffer.from('wrong'), header, Buffer.alloc(4)]);
      await assert.rejects(g[0].recv(2, { step: 5, sender: 2, chunk: 0 }, 500), /no chunk 0 from rank 2/);
      assert.equal(g[0].stats.rejected, 1);
      assert.equal(g[0].stats.messagesReceived, 0);
      // the squatted id '1' did not block the real rank 1
      await g[1].send(0, { step: 6, sender: 1, chunk: 0 }, new Float32Array([7]));
      assert.deepEqual([...(await g[0].recv(1, { step: 6, sender: 1, chunk: 0 }, 5000))], [7]);
    } finally {
      for (const d of [stray, wrong, inner]) d.close();
      await Promise.all(g.map((t) => t.close({ abort: true })));
    }
  });

  void it('a missing peer times out with the late rank and the step named', async () => {
    const g = await Promise.all([0, 1].map((rank) => ZmqTransport.bind({ rank, size: 3, token: 't' })));
    // rank 2's endpoint: a bound socket that is never used as a rank
    const ghost = new zmq.Router({ linger: 0 });
    await ghost.bind('tcp://127.0.0.1:*');
    const endpoints = [g[0].endpoint, g[1].endpoint, ghost.lastEndpoint as string];
    for (const t of g) t.connect(endpoints);
    try {
      const res = await Promise.allSettled(g.map((t) => allReduceSum(t, new Float32Array(4), 12, { algorithm: 'direct', timeoutMs: 250 })));
      for (const r of res) {
        assert.equal(r.status, 'rejected');
        const err = (r as PromiseRejectedResult).reason as AllReduceTimeoutError;
        assert.equal(err.message, 'all-reduce step 12: no chunk 0 from rank 2 after 0.25 s');
        assert.equal(err.lateRank, 2);
      }
    } finally {
      ghost.close();
      await Promise.all(g.map((t) => t.close()));
    }
  });

  void it('CURVE-encrypted connections when keys are configured', { skip: !zmq.capability.curve }, async () => {
    const keys = [curveKeyPair(), curveKeyPair()];
    const g = await group(2, 'tok', (rank) => ({ ...keys[rank], peerPublicKeys: keys.map((k) => k.publicKey) }));
    try {
      const bufs = [new Float32Array([1, 2]), new Float32Array([3, 4])];
      await Promise.all(g.map((t) => allReduceSum(t, bufs[t.rank], 0, { timeoutMs: 10_000 })));
      assert.deepEqual([...bufs[0]], [4, 6]);
      assert.deepEqual([...bufs[1]], [4, 6]);
    } finally {
      await Promise.all(g.map((t) => t.close()));
    }
  });

  void it('close leaves no open handles: a process that used three ranks exits by itself', async () => {
    const script = fileURLToPath(new URL('./fixtures/zmq-group.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    clearTimeout(killer);
    assert.equal(code, 0, 'the child did not exit by itself (killed after 60 s)');
    assert.deepEqual(JSON.parse(out), { sum: [6, 6, 6] });
  });

  void it('a message whose send resolved still arrives when the sender closes and exits at once', async () => {
    const t = await ZmqTransport.bind({ rank: 0, size: 2, token: 'secret' });
    const script = fileURLToPath(new URL('./fixtures/zmq-send-exit.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const endpoint = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())));
      t.connect([t.endpoint, endpoint]);
      child.stdin.write(t.endpoint + '\n');
      const got = await t.recv(1, { step: 1, sender: 1, chunk: 0 }, 30_000);
      assert.equal(got.length, 16 << 20);
      assert.equal(got[got.length - 1], 1);
    } finally {
      await t.close();
      child.kill();
    }
  });
});

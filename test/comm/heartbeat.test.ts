// The worker's heartbeat thread (worker/heartbeat.ts) on its own: it loads, says so, and tells the
// main thread when its beats keep failing (here: nothing listens at the address), and that a
// coordinator which stops answering is reported lost.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { addCoordinatorService, bindServer } from '../../src/comm/proto.js';
import { HeartbeatThread } from '../../worker/heartbeat.js';

test('the heartbeat thread starts, beats on its own channel, and reports beats failing three times in a row', async () => {
  // A port that was free a moment ago: connections to it are refused.
  const port = await new Promise<number>((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
  const mainBeats: unknown[] = [];
  let failing = '';
  let fallback: Error | null = null;
  const hb = new HeartbeatThread({ coordinator: `127.0.0.1:${port}`, token: 't', tls: {}, intervalMs: 100, lostAfterMs: 60_000 },
    { heartbeat: (b) => { mainBeats.push(b); return Promise.resolve({ generation: 1 }); } },
    (err) => (fallback = err), (message) => (failing = message));
  try {
    hb.beat({ rank: 0, generation: 1, step: 1 });
    const t0 = Date.now();
    while (!failing && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 50));
    assert.equal(fallback, null, 'the thread started');
    assert.ok(hb.onThread, 'beats come from the thread');
    assert.ok(failing.length > 0, 'three refused beats were reported to the main thread');
  } finally {
    await hb.stop();
  }
});

test('between groups the thread probes the coordinator; once it stops answering, the loss is reported after lostAfterMs', async () => {
  const seen: { rank: number; generation: number }[] = [];
  const server = new grpc.Server();
  const no = (): never => {
    throw new Error('not in this test');
  };
  addCoordinatorService(server, 't', {
    heartbeat: (r) => {
      seen.push({ rank: r.rank, generation: r.generation });
      return Promise.resolve({ generation: 1 });
    },
    register: no, reportStep: no, reportFailure: no, commitCheckpoint: no, batches: no, control: no,
  });
  const port = await bindServer(server, '127.0.0.1:0');
  let lost: { silentMs: number; message: string } | null = null;
  const hb = new HeartbeatThread({ coordinator: `127.0.0.1:${port}`, token: 't', tls: {}, intervalMs: 100, lostAfterMs: 1500 },
    { heartbeat: () => Promise.resolve({ generation: 1 }) }, () => undefined, () => undefined, (silentMs, message) => (lost = { silentMs, message }));
  try {
    // Never told to beat as a member: only probes (generation 0, which no coordinator generation equals).
    const t0 = Date.now();
    while (seen.length < 3 && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 50));
    assert.ok(seen.length >= 3 && seen.every((b) => b.generation === 0), JSON.stringify(seen));
    assert.equal(lost, null, 'an answering coordinator is not lost');
    server.forceShutdown();
    const t1 = Date.now();
    while (!lost && Date.now() - t1 < 20_000) await new Promise((r) => setTimeout(r, 50));
    assert.ok(lost, 'the loss was reported');
    const { silentMs } = lost as { silentMs: number };
    assert.ok(silentMs > 1500 && silentMs < 10_000, `reported after ${silentMs} ms of silence`);
  } finally {
    server.forceShutdown();
    await hb.stop();
  }
});

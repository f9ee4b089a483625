// The worker's heartbeat thread (worker/heartbeat.ts) on its own: it loads, says so, and tells the
// main thread when its beats keep failing (here: nothing listens at the address).
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
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

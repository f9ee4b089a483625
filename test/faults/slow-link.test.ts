// Slow links, as they were found: an all-reduce over a 256 kbit/s link (tc tbf in network
// namespaces made here) must not be declared dead because its message takes longer than the
// fixed timeout, while a dead link is still found within that same bounded wait. The wait for a
// receive is distributed.allreduce_timeout_s plus distributed.allreduce_s_per_mib per MiB.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeNet, netnsUnavailable, type Net } from './netns.js';

const why = netnsUnavailable();
const SCRIPT = new URL('./allreduce-peer.ts', import.meta.url).pathname;
// 96 KiB per rank: about 3 s each way at 256 kbit/s (32 KB/s).
const FLOATS = 24 * 1024;

async function allReduce(net: Net, timeoutMs: number, msPerMiB: number): Promise<{ ok: boolean; s: number; error?: string }[]> {
  const endpoints = net.hosts.map((h) => `tcp://${h.ip}:29600`);
  const procs = net.hosts.map((h, r) => {
    const child = h.spawn([process.execPath, '--import', 'tsx', SCRIPT, String(r), ...endpoints, String(FLOATS), String(timeoutMs), String(msPerMiB)], process.env);
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    return new Promise<{ ok: boolean; s: number; error?: string }>((resolve) => child.on('exit', () => resolve(out.trim() ? JSON.parse(out.trim().split('\n').at(-1)!) : { ok: false, s: 0, error: err })));
  });
  return Promise.all(procs);
}

test('a 256 kbit/s link: a fixed 1 s wait declares it dead; with the per-MiB allowance the all-reduce completes; a dropped link fails within that wait', { skip: why ?? undefined, timeout: 240_000 }, async (t) => {
  const net = makeNet(2);
  try {
    net.limit(net.hosts[1]!, '256kbit');
    const fixed = await allReduce(net, 1000, 0);
    assert.ok(fixed.some((r) => !r.ok && /no chunk 0 from rank/.test(r.error ?? '')), `without the allowance the slow link looks dead: ${JSON.stringify(fixed)}`);
    // 128 s/MiB is 64 kbit/s, a quarter of the link's speed: the wait for 96 KiB is 1 + 12 s.
    const scaled = await allReduce(net, 1000, 128_000);
    assert.ok(scaled.every((r) => r.ok), JSON.stringify(scaled));
    t.diagnostic(`96 KiB all-reduce of 2 ranks over 256 kbit/s: ${scaled.map((r) => r.s.toFixed(1)).join(' / ')} s (wait allowed 13 s)`);
    net.partition(net.hosts[1]!);
    const dead = await allReduce(net, 1000, 128_000);
    assert.ok(dead.every((r) => !r.ok), JSON.stringify(dead));
    assert.ok(dead.every((r) => r.s < 13 + 5), `a dead link is found within the wait: ${JSON.stringify(dead)}`);
    t.diagnostic(`dropped link found after ${dead.map((r) => r.s.toFixed(1)).join(' / ')} s`);
  } finally {
    net.destroy();
  }
});

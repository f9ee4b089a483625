// A rogue ZeroMQ peer (Debian's python3-zmq, test/fixtures/hostile/zmq_peer.py, a process of its
// own) against real ZmqTransports on loopback, the attacks as they were found: a routing-id squat
// without the token stalled a rank's all-reduce; 1 GiB frames grew a worker's memory by gigabytes; a
// routing id with a newline wrote a fake log line. The connection handshake (PLAIN with the job
// token or CURVE, through the ZAP handler) and libzmq's frame limit now stop them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { allReduceSum } from '../../src/comm/allreduce.js';
import { curveKeyPair, maxMessageBytes, ZmqTransport } from '../../src/comm/zmq.js';
import { setStderrSink } from '../../src/log.js';
import { python, PYTHON } from '../fixtures/hostile/job.js';

const NO_ZMQ = spawnSync(PYTHON, ['-c', 'import zmq'], { encoding: 'utf8' }).status === 0 ? false : `${PYTHON} has no zmq (apt python3-zmq)`;
const TOKEN = 'zmq-hostile-token';

const lines: string[] = [];
let prev: ReturnType<typeof setStderrSink> = null;
before(() => {
  prev = setStderrSink((text) => {
    lines.push(...text.split('\n').filter(Boolean));
    process.stderr.write(text);
  });
});
after(() => void setStderrSink(prev));

function pair(): Promise<ZmqTransport[]> {
  return Promise.all([0, 1].map((rank) => ZmqTransport.bind({ rank, size: 2, token: TOKEN })));
}

async function sums(g: ZmqTransport[], step: number, len = 1000): Promise<void> {
  const bufs = g.map((t) => new Float32Array(len).fill(t.rank + 1));
  await Promise.all(g.map((t) => allReduceSum(t, bufs[t.rank]!, step, { algorithm: 'direct', timeoutMs: 10_000 })));
  for (const b of bufs) assert.equal(b[len - 1], 3);
}

test('a peer that squats rank 1\'s routing id without the token does not block rank 1', { skip: NO_ZMQ, timeout: 60_000 }, async () => {
  const g = await pair();
  try {
    // connected (and kept open, sending) before rank 1 connects: the old ROUTER bound id "1" to it
    const squatter = python('zmq_peer.py', ['squat', '--endpoint', g[0]!.endpoint, '--id', '1', '--seconds', '6']);
    await sleep(1500);
    for (const t of g) t.connect(g.map((p) => p.endpoint));
    await sums(g, 1);
    await squatter;
    assert.equal(g[0]!.stats.rejected, 0, 'nothing of the squatter reached the transport');
  } finally {
    await Promise.all(g.map((t) => t.close({ abort: true })));
  }
});

test('frames over the limit drop the connection before they are buffered: memory stays flat, the group goes on', { skip: NO_ZMQ, timeout: 120_000 }, async () => {
  const floats = 1000;
  // ranks 0 and 1 of a group of 3: the token-holding rogue logs in as rank 2, so only the frame limit stops it
  const g = await Promise.all([0, 1].map((rank) => ZmqTransport.bind({ rank, size: 3, token: TOKEN, maxMessageBytes: maxMessageBytes(floats) })));
  for (const t of g) t.connect([g[0]!.endpoint, g[1]!.endpoint, 'tcp://127.0.0.1:9']);
  let peak = 0;
  const base = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss - base)), 5);
  try {
    const MiB = 2 ** 20;
    const big = (args: string[]) => python('zmq_peer.py', ['big', '--endpoint', g[0]!.endpoint, '--id', '2', ...args]);
    // three 300 MiB frames from a peer without the token, three from one with it, one just over this group's exact limit
    await big(['--bytes', String(300 * MiB), '--count', '3', '--seconds', '2']);
    await big(['--token', TOKEN, '--bytes', String(300 * MiB), '--count', '3', '--seconds', '2']);
    await big(['--token', TOKEN, '--bytes', String(maxMessageBytes(floats) + 1), '--count', '1', '--seconds', '1']);
    clearInterval(sampler);
    process.stdout.write(`# rogue frames 6 × 300 MiB + 1 over the ${maxMessageBytes(floats)} B limit: peak RSS growth ${(peak / MiB).toFixed(1)} MiB\n`);
    assert.ok(peak < 100 * MiB, `RSS grew by ${(peak / MiB).toFixed(0)} MiB`);
    assert.equal(g[0]!.stats.messagesReceived, 0);
    assert.equal(g[0]!.stats.rejected, 0);
    // a frame at the limit still passes, and the group goes on
    await g[1]!.send(0, { step: 4, sender: 1, chunk: 0 }, new Float32Array(floats).fill(5));
    assert.equal((await g[0]!.recv(1, { step: 4, sender: 1, chunk: 0 }, 10_000))[floats - 1], 5);
  } finally {
    clearInterval(sampler);
    await Promise.all(g.map((t) => t.close({ abort: true })));
  }
});

test('a claimed rank with a newline cannot write a log line of its own', { skip: NO_ZMQ, timeout: 60_000 }, async () => {
  const g = await pair();
  try {
    const from = lines.length;
    await python('zmq_peer.py', ['inject', '--endpoint', g[0]!.endpoint, '--token', 'wrong', '--seconds', '1']);
    await python('zmq_peer.py', ['inject', '--endpoint', g[0]!.endpoint, '--token', TOKEN, '--seconds', '1']);
    const mine = lines.slice(from);
    assert.ok(!mine.some((l) => l.startsWith('info [coordinator] done')), mine.join('\n'));
    assert.ok(mine.some((l) => /refused a ZeroMQ connection: wrong job token .*claimed_rank=1\\ninfo \[coordinator\] done/.test(l)), mine.join('\n'));
    assert.ok(mine.some((l) => /refused a ZeroMQ connection: a rank outside the group .*claimed_rank=1\\ninfo/.test(l)), mine.join('\n'));
    assert.ok(mine.some((l) => /dropped a ZeroMQ message: wrong job token peer=claimed rank 1\\ninfo \[coordinator\] done/.test(l)), mine.join('\n'));
  } finally {
    await Promise.all(g.map((t) => t.close({ abort: true })));
  }
});

test('with CURVE, a peer holding the token but no key of the group cannot deliver a gradient', { skip: NO_ZMQ, timeout: 60_000 }, async () => {
  const keys = [0, 1, 2].map(() => curveKeyPair());
  const peerPublicKeys = keys.map((k) => k.publicKey);
  // ranks 0 and 1 of 3; the rogue claims rank 2, whose real process has not connected
  const g = await Promise.all([0, 1].map((rank) => ZmqTransport.bind({ rank, size: 3, token: TOKEN, curve: { ...keys[rank]!, peerPublicKeys } })));
  for (const t of g) t.connect([g[0]!.endpoint, g[1]!.endpoint, 'tcp://127.0.0.1:9']);
  try {
    const from = lines.length;
    const rogue = python('zmq_peer.py', ['curve', '--endpoint', g[0]!.endpoint, '--server-key', keys[0]!.publicKey, '--id', '2', '--token', TOKEN, '--step', '5', '--seconds', '2']);
    await assert.rejects(g[0]!.recv(2, { step: 5, sender: 2, chunk: 0 }, 2500), /no chunk 0 from rank 2/);
    await rogue;
    assert.equal(g[0]!.stats.messagesReceived, 0);
    assert.ok(lines.slice(from).some((l) => /refused a ZeroMQ connection: a CURVE key that is not one of the group's/.test(l)), lines.slice(from).join('\n'));
    // the group's own keys still connect
    await g[1]!.send(0, { step: 6, sender: 1, chunk: 0 }, new Float32Array([7]));
    assert.deepEqual([...(await g[0]!.recv(1, { step: 6, sender: 1, chunk: 0 }, 5000))], [7]);
  } finally {
    await Promise.all(g.map((t) => t.close({ abort: true })));
  }
});

// A job started by hand, as with torchrun on several hosts: `onelora worker` processes and a
// coordinator started separately, in any order, with one ONELORA_JOB_TOKEN. Real processes on
// loopback; the tiny LLaMA run of test/train/helpers.ts.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { initBackend } from '../../src/backend/select.js';
import type { RunConfig } from '../../src/config/index.js';
import { launch } from '../../coordinator/launcher.js';
import { Coordinator } from '../../coordinator/server.js';
import { tinyConfig, tinyLmRun, tmpDir } from '../train/helpers.js';

await initBackend('wasm');
const dir = await tinyLmRun();
const cfg = (sets: string[] = []): RunConfig => tinyConfig(dir, { batch: { global: 8, micro: 2 } }, ['distributed.allreduce_timeout_s=20', ...sets]);
const BIN = new URL('../../bin/onelora.js', import.meta.url).pathname;
const TOKEN = 'manual-test-token';

/** A port nothing listens on (bound and released at once). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** `onelora worker` against `port`, with its stderr collected; resolves with the exit code. */
function worker(port: number, args: string[] = []): { child: ChildProcess; exit: Promise<number | null>; stderr: () => string } {
  const child = spawn(process.execPath, [BIN, 'worker', '--coordinator', `127.0.0.1:${port}`, '--backend', 'wasm', ...args], {
    env: { ...process.env, ONELORA_JOB_TOKEN: TOKEN, ONELORA_LOG: 'info' }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  return { child, exit: new Promise((resolve) => child.on('exit', resolve)), stderr: () => err };
}

test('--help of coordinator and worker names ONELORA_JOB_TOKEN and how to make one', () => {
  for (const cmd of ['coordinator', 'worker']) {
    const r = spawnSync(process.execPath, [BIN, cmd, '--help'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /ONELORA_JOB_TOKEN/, cmd);
    assert.match(r.stdout, /openssl rand -hex 24/, cmd);
  }
  assert.match(spawnSync(process.execPath, [BIN, 'worker', '--help'], { encoding: 'utf8' }).stdout, /--connect-timeout/);
});

/** Resolves once `w` has logged a line matching `re` (true), or has exited (false). */
async function logged(w: ReturnType<typeof worker>, re: RegExp): Promise<boolean> {
  while (!re.test(w.stderr())) {
    if (w.child.exitCode !== null) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return true;
}

/** The coordinator's run, failing at once should a worker exit with an error first. */
function done(c: Coordinator, ws: ReturnType<typeof worker>[]): Promise<Awaited<Coordinator['done']>> {
  const failed = ws.map((w) => w.exit.then((code) => (code === 0 ? new Promise<never>(() => undefined) : Promise.reject(new Error(`a worker exited ${code}:\n${w.stderr()}`)))));
  return Promise.race([c.done, ...failed]);
}

test('a worker started before its coordinator retries with backoff, logging each retry, and the run completes', async () => {
  const port = await freePort();
  const w = worker(port);
  const retry = new RegExp(`coordinator 127\\.0\\.0\\.1:${port} not reachable yet .*; retrying in \\d+\\.\\d s`);
  assert.ok(await logged(w, retry), `the worker gave up instead of retrying:\n${w.stderr()}`);
  // 2-3 s later, as a coordinator started by hand after its workers would be.
  await new Promise((resolve) => setTimeout(resolve, 2500));
  const c = new Coordinator({ cfg: cfg(), workers: 1, output: tmpDir('manual-late'), token: TOKEN, bind: `127.0.0.1:${port}`, maxSteps: 2, quiet: true });
  await c.start();
  try {
    const summary = await done(c, [w]);
    assert.equal(summary.steps, 2);
    assert.equal(await w.exit, 0, w.stderr());
    assert.ok(w.stderr().split('\n').filter((l) => retry.test(l)).length >= 2, `one line per retry:\n${w.stderr()}`);
  } finally {
    await c.shutdown();
  }
});

test('a worker whose coordinator never comes gives up after --connect-timeout, saying so', async () => {
  const w = worker(await freePort(), ['--connect-timeout', '2']);
  assert.equal(await w.exit, 1, w.stderr());
  assert.match(w.stderr(), /retried for 2 s: --connect-timeout/);
});

test('two workers on one host without --zmq-port both bind (a free port each, logged) and train together', async () => {
  const c = new Coordinator({ cfg: cfg(), workers: 2, output: tmpDir('manual-two'), token: TOKEN, bind: '127.0.0.1:0', maxSteps: 2, quiet: true });
  await c.start();
  try {
    const ws = [worker(c.port), worker(c.port)];
    const summary = await done(c, ws);
    assert.equal(summary.steps, 2);
    const endpoints = [];
    for (const w of ws) {
      assert.equal(await w.exit, 0, w.stderr());
      const m = /ZeroMQ endpoint (tcp:\/\/127\.0\.0\.1:\d+) \(a free port: no --zmq-port given\)/.exec(w.stderr());
      assert.ok(m, w.stderr());
      endpoints.push(m[1]);
    }
    assert.notEqual(endpoints[0], endpoints[1]);
  } finally {
    await c.shutdown();
  }
});

test('launch --resume DIR without --workers takes the run\'s world size', async () => {
  const output = tmpDir('manual-resume');
  const first = await launch({ cfg: cfg(['distributed.workers=2']), workers: 2, output, maxSteps: 2, quiet: true, backend: 'wasm', env: { ONELORA_LOG: 'warn' }, heartbeatTimeoutMs: 20_000 });
  assert.equal(first.summary.steps, 2);
  const r = spawnSync(process.execPath, [BIN, 'launch', '--resume', output, '--max-steps', '4', '--backend', 'wasm', '--json'], {
    encoding: 'utf8', env: { ...process.env, ONELORA_LOG: 'info' }, timeout: 240_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as { steps: number; backend: string };
  assert.equal(summary.steps, 4);
  assert.match(summary.backend, /× 2 workers/);
  assert.match(r.stderr, /2 worker\(s\), the run's own/);
  const state = JSON.parse(fs.readFileSync(path.join(output, 'checkpoints', 'step-4', 'trainer_state.json'), 'utf8')) as { world_size: number };
  assert.equal(state.world_size, 2);
});

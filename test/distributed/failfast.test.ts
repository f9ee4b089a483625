// Fail fast with the right exit code (docs/distributed.md#fail-fast), each fault made the way it
// happens to a user, with real processes: a worker that exits 2 stops the job at once (no restarts,
// no wait for a group), wrong inputs are refused before any worker starts, a taken port names its
// flag and rank. The disk faults are in failfast-disk.test.ts.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { initBackend } from '../../src/backend/select.js';
import type { RunConfig } from '../../src/config/index.js';
import { UserError } from '../../src/errors.js';
import { launch } from '../../coordinator/launcher.js';
import { tinyLmRun, tmpDir } from '../train/helpers.js';
import { configFile, coordinator, onelora, smallRun } from './failfast-helpers.js';

await initBackend('wasm');
const dir = await tinyLmRun();
const cfg = (sets: string[] = []): RunConfig => smallRun(dir, sets);

// Before: the launcher restarted each worker 3 times, then the job waited 300 s and exited 1.
test('launch: a worker that exits 2 (missing validation file) stops the job at once with exit 2 and its message; no restart', { timeout: 120_000 }, async () => {
  const missing = path.join(dir, 'data', 'no-such-validation.arrow');
  const output = tmpDir('exit2');
  const c = { ...cfg(), data: { ...cfg().data, validation: missing } };
  const t0 = Date.now();
  await assert.rejects(
    launch({ cfg: c, workers: 2, output, maxSteps: 2, quiet: true, backend: 'wasm', heartbeatTimeoutMs: 20_000, env: { ONELORA_LOG: 'error' } }),
    (e: unknown) => e instanceof UserError && e.message.includes(missing) && /^rank \d: /.test(e.message),
  );
  console.log(`# worker exit 2 → job exit 2 in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

test('coordinator + workers: a worker that cannot read the model exits 2 and the coordinator stops with exit 2 and the worker\'s message', { timeout: 120_000 }, async () => {
  const gone = path.join(tmpDir('nomodel'), 'model');
  const c = { ...cfg(), model: { ...cfg().model, path: gone } };
  const token = 'failfast-token';
  const port = 29000 + (process.pid % 900);
  const co = coordinator(['--config', configFile(c), '--workers', '1', '--output', tmpDir('coord-exit2'), '--bind', `127.0.0.1:${port}`], token);
  await co.listening;
  const w = await onelora(['worker', '--coordinator', `127.0.0.1:${port}`, '--rank', '0', '--backend', 'wasm'], { ONELORA_JOB_TOKEN: token });
  assert.equal(w.code, 2, w.stderr);
  assert.equal(await co.exited, 2, co.stderr());
  assert.match(co.stderr(), /not found on this machine: model\.path/, 'the coordinator warned it cannot see the model');
  assert.match(co.stderr(), new RegExp(`onelora: rank 0: .*${gone.replace(/[/.]/g, '\\$&')}`), co.stderr());
});

test('launch checks the method, model and data before starting any worker: exit 2 naming what is wrong', { timeout: 120_000 }, async () => {
  const file = configFile(cfg());
  const bogus = await onelora(['launch', '--workers', '2', '--config', file, '--output', tmpDir('m'), '--backend', 'wasm', '--method', 'bogus']);
  assert.equal(bogus.code, 2, bogus.stderr);
  assert.match(bogus.stderr, /unknown method 'bogus'/);
  assert.doesNotMatch(bogus.stderr, /\[rank \d\]/, 'no worker was started');

  const noVal = await onelora(['launch', '--workers', '2', '--config', file, '--output', tmpDir('v'), '--backend', 'wasm', '--set', 'data.validation=data/none.arrow']);
  assert.equal(noVal.code, 2, noVal.stderr);
  assert.match(noVal.stderr, /data\.validation.*none\.arrow/);

  // A copy of the model with its weights cut short, as an interrupted download leaves it.
  const cut = tmpDir('cut');
  fs.cpSync(path.join(dir, 'model'), cut, { recursive: true });
  const weights = path.join(cut, 'model.safetensors');
  fs.truncateSync(weights, Math.floor(fs.statSync(weights).size / 2));
  const truncated = await onelora(['launch', '--workers', '2', '--config', file, '--output', tmpDir('t'), '--backend', 'wasm', '--set', `model.path=${cut}`]);
  assert.equal(truncated.code, 2, truncated.stderr);
  assert.ok(truncated.stderr.includes(weights), truncated.stderr);
  assert.doesNotMatch(truncated.stderr, /\[rank \d\]/, 'no worker was started');
});

// Before: an uncaught EADDRINUSE stack trace; a worker started as rank 1 said "rank 0: cannot bind".
test('a taken port is exit 2 naming the flag, the port and the rank: launch --metrics-port, worker --zmq-port', { timeout: 120_000 }, async () => {
  const taken = net.createServer();
  const port = await new Promise<number>((resolve) => taken.listen(0, '127.0.0.1', () => resolve((taken.address() as net.AddressInfo).port)));
  try {
    const metrics = await onelora(['launch', '--workers', '1', '--config', configFile(cfg()), '--output', tmpDir('mp'), '--backend', 'wasm', '--metrics-port', String(port)]);
    assert.equal(metrics.code, 2, metrics.stderr);
    assert.match(metrics.stderr, new RegExp(`onelora: --metrics-port ${port}: cannot listen \\(EADDRINUSE: the port is already in use\\)`));
    assert.doesNotMatch(metrics.stderr, /\n\s+at /, 'no stack trace');
    const worker = await onelora(['worker', '--coordinator', '127.0.0.1:1', '--rank', '1', '--zmq-port', String(port), '--backend', 'wasm'], { ONELORA_JOB_TOKEN: 't' });
    assert.equal(worker.code, 2, worker.stderr);
    assert.match(worker.stderr, new RegExp(`onelora: rank 1: --zmq-port ${port}: cannot listen \\(EADDRINUSE`));
  } finally {
    taken.close();
  }
});

test('a worker whose model file differs in size from the one the run started on exits 2 naming it; the coordinator stops with exit 2', { timeout: 180_000 }, async () => {
  const copy = tmpDir('sizes');
  fs.cpSync(path.join(dir, 'model'), copy, { recursive: true });
  const c = cfg([`model.path=${copy}`]);
  const token = 'sizes-token';
  const port = 29000 + ((process.pid + 300) % 900);
  const co = coordinator(['--config', configFile(c), '--workers', '1', '--output', tmpDir('sizes-out'), '--bind', `127.0.0.1:${port}`], token);
  await co.listening;
  // inputs.json is written: the model changes under the run before its worker starts.
  const weights = path.join(copy, 'model.safetensors');
  fs.appendFileSync(weights, Buffer.alloc(8));
  const w = await onelora(['worker', '--coordinator', `127.0.0.1:${port}`, '--backend', 'wasm'], { ONELORA_JOB_TOKEN: token });
  assert.equal(w.code, 2, w.stderr);
  assert.ok(w.stderr.includes(`${weights} (model.path) is `), w.stderr);
  assert.equal(await co.exited, 2, co.stderr());
  assert.ok(co.stderr().includes(`onelora: rank 0: ${weights} (model.path)`), co.stderr());
});

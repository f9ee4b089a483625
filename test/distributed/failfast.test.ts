// Fail fast with the right exit code (docs/distributed.md#fail-fast), each fault made the way it
// happens to a user, with real processes: a worker that exits 2 stops the job at once (no restarts,
// no wait for a group), wrong inputs are refused before any worker starts, a full disk (a tiny
// tmpfs mounted here) stops the job at the last complete checkpoint naming the file, and a resume
// of a run that died before its first checkpoint starts it again from step 0.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, test } from 'node:test';
import { initBackend } from '../../src/backend/select.js';
import { toYaml, type RunConfig } from '../../src/config/index.js';
import { UserError } from '../../src/errors.js';
import { train } from '../../src/train/trainer.js';
import { launch } from '../../coordinator/launcher.js';
import { tinyConfig, tinyLmRun, tmpDir } from '../train/helpers.js';
import { mountTmpfs, remount, unmountAll } from './mounts.js';

await initBackend('wasm');
const dir = await tinyLmRun();
const BIN = new URL('../../bin/onelora.js', import.meta.url).pathname;
const cfg = (sets: string[] = []): RunConfig => tinyConfig(dir, { batch: { global: 8, micro: 2 } }, ['distributed.allreduce_timeout_s=20', ...sets]);
after(unmountAll);

function configFile(c: RunConfig): string {
  const file = path.join(tmpDir('cfg'), 'run.yaml');
  fs.writeFileSync(file, toYaml(c));
  return file;
}

/** Runs `onelora ARGS` to its end; the exit code and stderr. */
function onelora(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ONELORA_LOG: 'warn', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
}

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
  const output = tmpDir('coord-exit2');
  const port = 29000 + (process.pid % 900);
  const coord = onelora(['coordinator', '--config', configFile(c), '--workers', '2', '--output', output, '--bind', `127.0.0.1:${port}`], { ONELORA_JOB_TOKEN: token });
  const workers = [0, 1].map((r) => onelora(['worker', '--coordinator', `127.0.0.1:${port}`, '--rank', String(r), '--backend', 'wasm'], { ONELORA_JOB_TOKEN: token }));
  const [co, ...ws] = await Promise.all([coord, ...workers]);
  assert.match(co.stderr, /not found on this machine: model\.path/, 'the coordinator warned it cannot see the model');
  assert.equal(co.code, 2, co.stderr);
  assert.match(co.stderr, new RegExp(`onelora: rank \\d: .*${gone.replace(/[/.]/g, '\\$&')}`), co.stderr);
  for (const w of ws) assert.ok(w.code === 2 || w.code === 1, w.stderr);
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

// Before: "rank 0: ENOSPC … failure 4 exceeds max_failures 3", no path, .tmp-step-N piling up.
test('disk full (a 56 KiB tmpfs): the failed checkpoint names its file, the job exits 1 at once, the last complete checkpoint stays the resume point', { timeout: 180_000 }, async (t) => {
  const mnt = mountTmpfs('56k');
  if (!mnt) return t.skip('mount -t tmpfs is not available here');
  const output = path.join(mnt, 'out');
  const file = configFile(cfg(['checkpoint.every=1', 'checkpoint.keep=1']));
  const r = await onelora(['launch', '--workers', '2', '--config', file, '--output', output, '--backend', 'wasm', '--max-steps', '4']);
  assert.equal(r.code, 1, r.stderr);
  const m = /onelora: error: step (\d+): rank 0: cannot write (\S+): ENOSPC.*the last complete checkpoint \((\S+)\) is the resume point/.exec(r.stderr);
  assert.ok(m, r.stderr);
  assert.ok(m[2]!.startsWith(path.join(output, 'checkpoints')), m[2]);
  assert.doesNotMatch(r.stderr, /max_failures|restarting/, 'not a lost worker');
  const root = path.join(output, 'checkpoints');
  assert.equal(fs.readFileSync(path.join(root, 'latest'), 'utf8').trim(), path.basename(m[3]!));
  assert.deepEqual(fs.readdirSync(root).filter((n) => n.startsWith('.tmp-')), [], 'the failed write left no temporary directory');

  // Room again: the resume continues from that checkpoint and removes any stale .tmp- left by a kill.
  fs.mkdirSync(path.join(root, '.tmp-step-9-123'));
  remount(mnt, 'size=1m');
  const again = await onelora(['launch', '--resume', output, '--backend', 'wasm', '--max-steps', '4']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(fs.readFileSync(path.join(root, 'latest'), 'utf8').trim(), 'step-4');
  assert.deepEqual(fs.readdirSync(root).filter((n) => n.startsWith('.tmp-')), []);
});

// Before: "no checkpoint to resume from", exit 1, and the flag had to be dropped.
test('--resume of a run that died before its first checkpoint starts it again from step 0 with a warning; another run\'s config is refused', { timeout: 180_000 }, async () => {
  const output = tmpDir('early');
  const c = cfg();
  fs.writeFileSync(path.join(output, 'config.yaml'), toYaml(c));
  fs.writeFileSync(path.join(output, 'metrics.jsonl'), JSON.stringify({ step: 0, eval: { loss: 9 } }) + '\n{"step": 1, "lo');
  const other = await onelora(['launch', '--resume', output, '--workers', '2', '--backend', 'wasm', '--max-steps', '2', '--set', 'optim.lr=0.5']);
  assert.equal(other.code, 1, other.stderr);
  assert.match(other.stderr, /no checkpoint to resume from, and .*config\.yaml is another run's config/);
  const r = await onelora(['launch', '--resume', output, '--workers', '2', '--backend', 'wasm', '--max-steps', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /stopped before its first checkpoint; starting it again from step 0/);
  const lines = fs.readFileSync(path.join(output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; eval?: { loss: number } });
  // The dead run's lines are gone (its eval before, its torn line); the new run's: eval before, 2 steps, eval after.
  assert.deepEqual(lines.map((l) => l.step), [0, 1, 2, 2]);
  assert.notEqual(lines[0]!.eval?.loss, 9);
  assert.equal(fs.readFileSync(path.join(output, 'checkpoints', 'latest'), 'utf8').trim(), 'step-2');
});

test('coordinator --resume into a directory with no run yet (a Kubernetes Job\'s first start) starts one', { timeout: 180_000 }, async () => {
  const output = path.join(tmpDir('first'), 'run');
  const token = 'first-start-token';
  const port = 29000 + ((process.pid + 450) % 900);
  const coord = onelora(['coordinator', '--config', configFile(cfg()), '--workers', '1', '--output', output, '--bind', `127.0.0.1:${port}`, '--resume', '--max-steps', '1'], { ONELORA_JOB_TOKEN: token });
  const worker = onelora(['worker', '--coordinator', `127.0.0.1:${port}`, '--backend', 'wasm'], { ONELORA_JOB_TOKEN: token });
  const [co, w] = await Promise.all([coord, worker]);
  assert.equal(co.code, 0, co.stderr);
  assert.equal(w.code, 0, w.stderr);
  assert.ok(fs.existsSync(path.join(output, 'adapter')));
});

// Before: `--resume` into a read-only directory printed EROFS and hung; an empty read-only output said "ENOENT … mkdir".
test('a read-only output (tmpfs remounted ro) is exit 2 naming the directory, for --resume and for a new run; nothing hangs', { timeout: 180_000 }, async (t) => {
  const mnt = mountTmpfs('1m');
  if (!mnt) return t.skip('mount -t tmpfs is not available here');
  const output = path.join(mnt, 'run');
  await train(cfg(), { output, maxSteps: 2, quiet: true });
  remount(mnt, 'ro');
  const resumed = await onelora(['launch', '--resume', output, '--workers', '2', '--backend', 'wasm']);
  assert.equal(resumed.code, 2, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`onelora: --resume ${output.replace(/[/.]/g, '\\$&')}: the directory is not writable: EROFS`));
  const fresh = await onelora(['launch', '--workers', '2', '--config', configFile(cfg()), '--output', path.join(output, 'new'), '--backend', 'wasm']);
  assert.equal(fresh.code, 2, fresh.stderr);
  assert.match(fresh.stderr, /--output \S+new: the directory is not writable: EROFS \(it does not exist, and its parent \S+ is not writable\)/);
  const single = await onelora(['train', '--resume', output, '--backend', 'wasm']);
  assert.equal(single.code, 2, single.stderr);
  assert.match(single.stderr, /not writable: EROFS/);
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
  const child = spawn(process.execPath, [BIN, 'coordinator', '--config', configFile(c), '--workers', '1', '--output', tmpDir('sizes-out'), '--bind', `127.0.0.1:${port}`],
    { env: { ...process.env, ONELORA_LOG: 'info', ONELORA_JOB_TOKEN: token }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const listening = new Promise<void>((resolve) => child.stderr.on('data', (d: Buffer) => ((stderr += d.toString()), /coordinator listening/.test(stderr) && resolve())));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  await listening;
  // inputs.json is written: the model changes under the run before its worker starts.
  const weights = path.join(copy, 'model.safetensors');
  fs.appendFileSync(weights, Buffer.alloc(8));
  const w = await onelora(['worker', '--coordinator', `127.0.0.1:${port}`, '--backend', 'wasm'], { ONELORA_JOB_TOKEN: token });
  assert.equal(w.code, 2, w.stderr);
  assert.ok(w.stderr.includes(`${weights} (model.path) is `), w.stderr);
  assert.equal(await exited, 2, stderr);
  assert.ok(stderr.includes(`onelora: rank 0: ${weights} (model.path)`), stderr);
});

// Fail fast on the output disk (docs/distributed.md#fail-fast), on file systems the test mounts:
// a full disk (a 56 KiB tmpfs) stops the job at the last complete checkpoint naming the file, a
// read-only output is exit 2 naming it, and a resume of a run that died before its first
// checkpoint (or, for `coordinator --resume`, of no run yet) starts from step 0.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { initBackend } from '../../src/backend/select.js';
import { toYaml, type RunConfig } from '../../src/config/index.js';
import { train } from '../../src/train/trainer.js';
import { tinyLmRun, tmpDir } from '../train/helpers.js';
import { configFile, mountTmpfs, onelora, remount, smallRun, unmountAll } from './failfast-helpers.js';

await initBackend('wasm');
const dir = await tinyLmRun();
const cfg = (sets: string[] = []): RunConfig => smallRun(dir, sets);
after(unmountAll);

// Before: "rank 0: ENOSPC … failure 4 exceeds max_failures 3", no path, .tmp-step-N piling up.
test('disk full (a 56 KiB tmpfs): the failed checkpoint names its file, the job exits 1 at once, the last complete checkpoint stays the resume point', { timeout: 180_000 }, async (t) => {
  const mnt = mountTmpfs('56k');
  if (!mnt) return t.skip('mount -t tmpfs is not available here');
  const output = path.join(mnt, 'out');
  const file = configFile(cfg(['checkpoint.every=1', 'checkpoint.keep=1']));
  const r = await onelora(['launch', '--workers', '1', '--config', file, '--output', output, '--backend', 'wasm', '--max-steps', '3']);
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
  const again = await onelora(['launch', '--resume', output, '--backend', 'wasm', '--max-steps', '3']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(fs.readFileSync(path.join(root, 'latest'), 'utf8').trim(), 'step-3');
  assert.deepEqual(fs.readdirSync(root).filter((n) => n.startsWith('.tmp-')), []);
});

// Before: "no checkpoint to resume from", exit 1, and the flag had to be dropped.
test('--resume of a run that died before its first checkpoint starts it again from step 0 with a warning; another run\'s config is refused', { timeout: 180_000 }, async () => {
  const output = tmpDir('early');
  const c = cfg();
  fs.writeFileSync(path.join(output, 'config.yaml'), toYaml(c));
  fs.writeFileSync(path.join(output, 'metrics.jsonl'), JSON.stringify({ step: 0, eval: { loss: 9 } }) + '\n{"step": 1, "lo');
  const other = await onelora(['launch', '--resume', output, '--workers', '1', '--backend', 'wasm', '--max-steps', '2', '--set', 'optim.lr=0.5']);
  assert.equal(other.code, 1, other.stderr);
  assert.match(other.stderr, /no checkpoint to resume from, and .*config\.yaml is another run's config/);
  const r = await onelora(['launch', '--resume', output, '--workers', '1', '--backend', 'wasm', '--max-steps', '2']);
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
  const resumed = await onelora(['launch', '--resume', output, '--workers', '1', '--backend', 'wasm']);
  assert.equal(resumed.code, 2, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`onelora: --resume ${output.replace(/[/.]/g, '\\$&')}: the directory is not writable: EROFS`));
  const fresh = await onelora(['launch', '--workers', '1', '--config', configFile(cfg()), '--output', path.join(output, 'new'), '--backend', 'wasm']);
  assert.equal(fresh.code, 2, fresh.stderr);
  assert.match(fresh.stderr, /--output \S+new: the directory is not writable: EROFS \(it does not exist, and its parent \S+ is not writable\)/);
  const single = await onelora(['train', '--resume', output, '--backend', 'wasm']);
  assert.equal(single.code, 2, single.stderr);
  assert.match(single.stderr, /not writable: EROFS/);
});

// `npm run bundle` builds dist/, which then runs from a temporary directory outside the
// repository with none of its node_modules: doctor, 2 steps of the demo preset and a 2-worker
// launch (real worker processes spawned from the bundle, real gRPC and ZeroMQ).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { tmpDir } from './helpers.js';

const ROOT = path.resolve(import.meta.dirname, '..');

test('the bundle builds under 60 MB and runs doctor, train --preset demo and launch without the repository', () => {
  const parent = tmpDir('bundle');
  const dist = path.join(parent, 'dist');
  const b = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts', 'bundle.ts'), dist], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  assert.equal(b.status, 0, b.stderr);
  const built = JSON.parse(b.stdout.trim().split('\n').pop() as string) as { bytes: number };
  assert.ok(built.bytes <= 60 * 2 ** 20, `${built.bytes} bytes`);
  console.log(`bundle: ${built.bytes} bytes`);
  const work = tmpDir('bundle-run');
  // No NODE_PATH and a cwd outside the repository: only dist/ can answer an import.
  const env = { PATH: process.env.PATH ?? '', HOME: work, ONELORA_LOG: 'warn' };
  const run = (...args: string[]) => spawnSync(process.execPath, [path.join(dist, 'onelora.mjs'), ...args], { cwd: work, encoding: 'utf8', timeout: 600_000, env });
  const last = (out: string): Record<string, unknown> => JSON.parse(out.trim().split('\n').pop() as string) as Record<string, unknown>;

  const d = run('doctor', '--json', '--seconds', '0.2');
  assert.equal(d.status, 0, d.stderr);
  assert.equal((last(d.stdout).backends as { name: string; available: boolean }[]).find((x) => x.name === 'wasm')?.available, true);

  const t = run('train', '--preset', 'demo', '--max-steps', '2', '--set', 'eval.every=0', '--set', 'eval.max_batches=1', '--set', 'eval.generate=false', '--output', 'train', '--json');
  assert.equal(t.status, 0, t.stderr);
  assert.equal(last(t.stdout).steps, 2);
  assert.ok(fs.existsSync(path.join(work, 'train', 'adapter', 'adapter_model.safetensors')));

  const l = run('launch', '--workers', '2', '--preset', 'demo', '--max-steps', '1', '--set', 'eval.every=0', '--set', 'eval.max_batches=1', '--set', 'eval.generate=false', '--output', 'launch', '--json');
  assert.equal(l.status, 0, l.stderr);
  assert.equal(last(l.stdout).steps, 1);
  assert.match(String(last(l.stdout).backend), /× 2 workers/);
});

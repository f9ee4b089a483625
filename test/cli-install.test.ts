// docs/install.md shows the backend log line of the command it shows: running that command gives
// that line (the same one, where this machine has the same backends installed; the same shape
// everywhere).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const ROOT = path.resolve(import.meta.dirname, '..');

test('docs/install.md: the example output is what its command prints on stderr', () => {
  const doc = fs.readFileSync(path.join(ROOT, 'docs', 'install.md'), 'utf8');
  const m = /```sh\n(npx onelora bench kernels[^\n]*)\n```\n[\s\S]*?```text\n([^\n]+)\n```/.exec(doc);
  assert.ok(m, 'install.md shows a bench kernels command followed by its output');
  const [, cmd, shown] = m as unknown as [string, string, string];
  const args = cmd.split(/\s+/).slice(2);
  const env: NodeJS.ProcessEnv = { ...process.env, ONELORA_LOG: 'info' };
  delete env.ONELORA_BACKEND; // the command as a user types it: auto
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'onelora.js'), ...args], { cwd: ROOT, encoding: 'utf8', env, timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.ok('linear_fwd_bwd_vs_matmul' in (JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as object));
  const actual = r.stderr.split('\n').find((l) => l.startsWith('info [backend] backend ')) as string;
  assert.ok(actual, r.stderr);
  // The promise of the text: the backend chosen, and why each earlier candidate was skipped.
  const shape = /^info \[backend\] backend (\S+) backend=\1 reason=auto: first available of tensorflow-gpu > webgpu > tensorflow > wasm > cpu skipped=\[.*\]$/;
  assert.match(shown, shape);
  assert.match(actual, shape);
  assert.match(shown, /skipped=\["tensorflow-gpu: .*","webgpu: .*","tensorflow: .*"\]$/, 'the example shows the three skips');
  // The adapter's name carries the driver's version (Mesa's changes with its package): not compared.
  const norm = (l: string): string => l.replace(/adapter '[^']*'/, "adapter '…'");
  if (actual.split(' ')[3] === shown.split(' ')[3]) assert.equal(norm(actual), norm(shown));
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseBackendChoice } from '../../src/backend/select.js';
import { UserError } from '../../src/errors.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

/** Runs a fresh process (backend choice is once per process) and returns its result. */
function probe(args: string[], env: Record<string, string> = {}): { status: number | null; out: string } {
  const code = `import { initBackend } from './src/backend/select.ts';
    try { const b = await initBackend(process.argv[1]); console.log(JSON.stringify(b)); }
    catch (e) { console.log(JSON.stringify({ error: e.message, exitCode: e.exitCode })); }`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code, ...args], {
    cwd: ROOT, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ONELORA_LOG: 'warn', ...env },
  });
  return { status: r.status, out: r.stdout };
}

test('auto falls back past the uninstalled node backends to wasm, saying why', () => {
  const r = JSON.parse(probe([]).out.trim().split('\n').pop() as string) as { name: string; skipped: string[]; tfBackend: string };
  // On a machine where @tensorflow/tfjs-node(-gpu) installed, auto picks one of them instead.
  if (r.name === 'wasm') {
    assert.equal(r.tfBackend, 'wasm');
    assert.equal(r.skipped.length, 2);
    assert.match(r.skipped[0] as string, /^tensorflow-gpu: /);
    assert.match(r.skipped[1] as string, /^tensorflow: /);
  } else assert.ok(['tensorflow-gpu', 'tensorflow'].includes(r.name));
});

test('an explicit choice is honoured, from the flag or from ONELORA_BACKEND', () => {
  const cpu = JSON.parse(probe(['cpu']).out.trim().split('\n').pop() as string) as { name: string; tfBackend: string };
  assert.deepEqual([cpu.name, cpu.tfBackend], ['cpu', 'cpu']);
  const env = JSON.parse(probe([], { ONELORA_BACKEND: 'cpu' }).out.trim().split('\n').pop() as string) as { name: string; reason: string };
  assert.equal(env.name, 'cpu');
  assert.match(env.reason, /ONELORA_BACKEND/);
});

test('an explicit backend that is not installed is a user error (exit 2), not a silent fallback', () => {
  const r = JSON.parse(probe(['tensorflow-gpu']).out.trim().split('\n').pop() as string) as { name?: string; error?: string; exitCode?: number };
  if (r.name === 'tensorflow-gpu') return; // a GPU machine with the package installed
  assert.equal(r.exitCode, 2);
  assert.match(r.error as string, /tensorflow-gpu/);
});

test('an unknown backend name lists the choices', () => {
  assert.throws(() => parseBackendChoice('tpu', '--backend'), (e: unknown) => e instanceof UserError && /--backend: unknown backend 'tpu'.*wasm/.test(e.message));
});

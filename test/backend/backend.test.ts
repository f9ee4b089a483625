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
    assert.equal(r.skipped.length, 3);
    assert.match(r.skipped[0] as string, /^tensorflow-gpu: /);
    // webgpu: not installed, no Vulkan, or (here, lavapipe) a software adapter auto does not take.
    assert.match(r.skipped[1] as string, /^webgpu: /);
    assert.match(r.skipped[2] as string, /^tensorflow: /);
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

test('auto skips a software WebGPU adapter, saying so; --backend webgpu takes it', () => {
  const auto = JSON.parse(probe([]).out.trim().split('\n').pop() as string) as { skipped: string[] };
  const wg = JSON.parse(probe(['webgpu']).out.trim().split('\n').pop() as string) as { name?: string; error?: string; exitCode?: number };
  if (wg.name !== 'webgpu') {
    assert.equal(wg.exitCode, 2, 'an unavailable explicit webgpu is a user error');
    assert.match(auto.skipped[1] as string, /^webgpu: /);
    return;
  }
  const skip = auto.skipped.find((s) => s.startsWith('webgpu: '));
  // On a machine with a hardware adapter auto picks webgpu (or tensorflow-gpu before it) and skips nothing for it.
  if (skip) assert.match(skip, /software \(CPU\) implementation, slower than wasm/);
});

test('an unknown backend name lists the choices', () => {
  assert.throws(() => parseBackendChoice('tpu', '--backend'), (e: unknown) => e instanceof UserError && /--backend: unknown backend 'tpu'.*wasm/.test(e.message));
});

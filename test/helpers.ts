// Shared by every test folder: temp directories, the UserError assertion, and running a tensor
// suite once per available backend (as tfjs's own suite runs each op on every environment).
// tfjs is imported lazily, so tests that only need a temp dir do not load it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe } from 'node:test';
import { UserError } from '../src/errors.js';

/** A fresh directory under the OS temp dir, named onelora-TAG-XXXXXX. */
export function tmpDir(tag = 'test'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `onelora-${tag}-`));
}

/** `fn` throws a UserError whose message contains each string and matches each pattern. */
export function throwsUser(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UserError, `expected a UserError, got ${String(err)}`);
    for (const p of parts) {
      if (typeof p === 'string') assert.ok(err.message.includes(p), `'${err.message}' should include '${p}'`);
      else assert.match(err.message, p);
    }
    return true;
  });
}

/**
 * Declares `suite` once per tensor backend this machine has, as a `describe` named after it whose
 * tests run with that backend active (selected through initBackend, as the CLI does). Backends
 * that map onto one tfjs backend (tensorflow-gpu and tensorflow) run once; unavailable ones are
 * reported as skipped suites with the reason. ONELORA_TEST_BACKENDS=wasm,cpu narrows the list.
 * webgpu runs only when ONELORA_TEST_BACKENDS names it: without a GPU its adapter is a software one
 * (~50× slower than wasm), and test/backend/conformance.test.ts checks every op there already.
 */
export async function forEachBackend(suite: (backend: string) => void): Promise<void> {
  const { BACKEND_CHOICES } = await import('../src/backend/choices.js');
  const { initBackend } = await import('../src/backend/select.js');
  const only = process.env.ONELORA_TEST_BACKENDS?.split(',').map((s) => s.trim()).filter(Boolean);
  const seen = new Set<string>();
  for (const name of BACKEND_CHOICES) {
    if (name === 'auto' || (only && !only.includes(name))) continue;
    if (name === 'webgpu' && !only) {
      describe(`on ${name}`, { skip: 'webgpu: covered by test/backend/conformance.test.ts (ONELORA_TEST_BACKENDS=webgpu runs this suite there)' }, () => {});
      continue;
    }
    let tfBackend: string;
    try {
      tfBackend = (await initBackend(name)).tfBackend;
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      describe(`on ${name}`, { skip: err.message }, () => {});
      continue;
    }
    if (seen.has(tfBackend)) continue;
    seen.add(tfBackend);
    describe(`on ${name}`, () => {
      before(async () => {
        await initBackend(name);
      });
      suite(name);
    });
  }
  assert.ok(seen.size > 0, `no tensor backend available${only ? ` among ONELORA_TEST_BACKENDS=${only.join(',')}` : ''}`);
}

/** Whether process `pid` still exists (signal 0 checks without sending anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

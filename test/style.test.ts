// docs/internals.md#small-files: every source file stays within a 400-line budget (split by concept, not size).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
const BUDGET = 400;

function sources(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

test(`every source file in src/, coordinator/ and worker/ has at most ${BUDGET} lines`, () => {
  const files = ['src', 'coordinator', 'worker'].flatMap((d) => sources(path.join(ROOT, d)));
  assert.ok(files.length > 20, 'found the sources');
  const over = files
    .map((f) => ({ f: path.relative(ROOT, f), n: fs.readFileSync(f, 'utf8').split('\n').length - 1 }))
    .filter((x) => x.n > BUDGET);
  assert.deepEqual(over, [], `over budget: ${over.map((x) => `${x.f} (${x.n})`).join(', ')}`);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { buildProgram } from '../src/cli/main.js';
import { cliReference } from '../src/cli/reference.js';

test('docs/cli.md is generated from the current command definitions (npm run docs:cli)', () => {
  const file = path.join(import.meta.dirname, '..', 'docs', 'cli.md');
  assert.equal(fs.readFileSync(file, 'utf8'), cliReference(buildProgram()));
});

test('every subcommand has --help text and a description', () => {
  const missing: string[] = [];
  const visit = (c: ReturnType<typeof buildProgram>, p: string) => {
    if (!c.description()) missing.push(p);
    c.commands.forEach((s) => visit(s, `${p} ${s.name()}`));
  };
  visit(buildProgram(), 'onelora');
  assert.deepEqual(missing, []);
});

// Every command shown in README.md and docs/*.md is exercised (docs/deploy.md has its own checks
// in test/deploy/docs.test.ts). `onelora …` commands: the subcommand must exist and every flag the
// docs use must be one its --help lists; commands in RUNS are also run for real, cheaply. npm
// commands map to what they run. A command that matches no rule fails the test, so the docs
// cannot grow an unchecked command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tmpDir } from './helpers.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin', 'onelora.js');
const SKIP = new Set(['deploy.md']);

/** Lines of ```sh blocks, and the onelora/npm lines of untagged blocks (which also hold diagrams and output). */
function shellCommands(file: string): string[] {
  const out: string[] = [];
  const parts = fs.readFileSync(file, 'utf8').split(/^```(\w*)\n/m);
  for (let i = 1; i + 1 < parts.length; i += 2) {
    const tag = parts[i] as string;
    if (tag !== 'sh' && tag !== '') continue;
    const body = (parts[i + 1] as string).split(/^```$/m)[0] as string;
    const lines = body.replace(/\\\n\s*/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    out.push(...(tag === 'sh' ? lines : lines.filter((l) => /^(npx )?(onelora|npm) /.test(l))));
  }
  return out;
}

function onelora(args: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 600_000, env: { ...process.env, ONELORA_LOG: 'warn' } });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const helpCache = new Map<string, string>();
function helpOf(sub: string[]): string {
  const key = sub.join(' ');
  if (!helpCache.has(key)) helpCache.set(key, onelora([...sub, '--help']).out);
  return helpCache.get(key) as string;
}

/** Subcommand words (before the first flag or argument that is not a known subcommand). */
function subcommand(words: string[]): string[] {
  const sub: string[] = [];
  for (const w of words) {
    if (w.startsWith('-')) break;
    const help = helpOf(sub);
    if (!new RegExp(`^\\s+${w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`, 'm').test(help.split(/^Commands:/m)[1] ?? '')) break;
    sub.push(w);
  }
  return sub;
}

/** Cheap commands run for real, with the output they must show. */
const RUNS: Record<string, RegExp> = {
  'onelora --version': /^\d+\.\d+\.\d+/m,
  'onelora bench kernels --reps 1 --json': /"linear_fwd_bwd_vs_matmul"/,
  'onelora presets': /^demo +The default job/m,
};

function checkOnelora(cmd: string): void {
  // `npm install` puts no `onelora` on PATH; npx finds the package's own bin.
  assert.match(cmd, /^npx onelora\b/, `'${cmd}': onelora is not on PATH after the README's set-up: write 'npx onelora …'`);
  // Synopsis lines write optional flags as [--flag VALUE] and alternatives as a|b.
  const words = cmd.replace(/^npx /, '').replace(/\s+#.*$/, '').replace(/[[\]]/g, ' ').split(/\s+/).filter(Boolean).slice(1);
  const sub = subcommand(words);
  const help = helpOf(sub);
  for (const flag of words.filter((w) => w.startsWith('--')).map((w) => w.split('=')[0] as string)) {
    assert.ok(help.includes(flag), `${cmd}: 'onelora ${sub.join(' ')}' has no ${flag}`);
  }
  const expect = RUNS[cmd.replace(/^npx /, '')];
  if (expect) {
    const r = onelora(words);
    assert.equal(r.status, 0, `${cmd}: ${r.out}`);
    assert.match(r.out, expect);
  }
}

test('npx onelora, as every doc writes it, runs this checkout\'s CLI with no network', () => {
  const r = spawnSync('npx', ['--no-install', 'onelora', '--version'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /^\d+\.\d+\.\d+/m);
});

test('every command in README.md and docs/ is checked', () => {
  const files = [path.join(ROOT, 'README.md'), ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md') && !SKIP.has(f)).map((f) => path.join(ROOT, 'docs', f))];
  let checked = 0;
  for (const file of files) {
    for (const cmd of shellCommands(file)) {
      if (/^(npx )?onelora\b/.test(cmd)) checkOnelora(cmd);
      else if (cmd === 'npm install' || cmd === 'npm test') {
        // npm install is what CI's npm ci does from the lockfile; npm test is this very run.
      } else if (cmd === 'npm install && npm start') {
        const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
        assert.equal(pkg.scripts.start, 'node bin/onelora.js train --preset demo');
        const out = tmpDir('start');
        const r = onelora(['train', '--preset', 'demo', '--max-steps', '2', '--output', out, '--set', 'eval.max_batches=1', '--set', 'eval.max_new_tokens=4']);
        assert.equal(r.status, 0, r.out);
        assert.match(r.out, /trainable parameters: [\d,]+/);
        assert.match(r.out, /validation loss: +[\d.]+ before → [\d.]+ after/);
        assert.match(r.out, /answer accuracy:/);
      } else if (/^npm run [\w:-]+$/.test(cmd)) {
        const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
        assert.ok(pkg.scripts[cmd.slice(8)], `${cmd}: no such npm script`);
      } else assert.fail(`${path.relative(ROOT, file)}: no check for '${cmd}'`);
      checked++;
    }
  }
  assert.ok(checked >= 4, `checked ${checked} commands`);
});

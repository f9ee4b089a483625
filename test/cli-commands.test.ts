// Small command-line behaviours: `onelora presets`, a wrong --backend named as the flag, and
// `deploy render --preset` (the same overlay as --config presets/NAME.yaml).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import YAML from 'yaml';

const ROOT = path.resolve(import.meta.dirname, '..');
const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'bin', 'onelora.js'), ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ONELORA_LOG: 'warn' } });

test('onelora presets lists every preset with its one-line description', () => {
  const r = cli('presets');
  assert.equal(r.status, 0, r.stderr);
  const files = fs.readdirSync(path.join(ROOT, 'presets')).filter((f) => f.endsWith('.yaml')).sort();
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, files.length);
  for (const [i, f] of files.entries()) {
    const description = (YAML.parse(fs.readFileSync(path.join(ROOT, 'presets', f), 'utf8')) as { description?: string }).description;
    assert.ok(description && !description.includes('\n'), `presets/${f} has a one-line description:`);
    assert.match(lines[i] as string, new RegExp(`^${f.slice(0, -5).replace(/\./g, '\\.')} +`));
    assert.ok((lines[i] as string).endsWith(description), lines[i]);
  }
  const json = JSON.parse(cli('presets', '--json').stdout.trim()) as { name: string; description: string }[];
  assert.deepEqual(json.map((p) => p.name), files.map((f) => f.slice(0, -5)));
});

test('an unknown --backend is an error naming the flag (exit 2), on run commands and others', () => {
  for (const args of [['train', '--preset', 'demo', '--max-steps', '1'], ['bench', 'kernels'], ['worker', '--coordinator', '127.0.0.1:1']]) {
    const r = cli(...args, '--backend', 'gpu');
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /option '--backend <name>' argument 'gpu' is invalid\. Allowed choices are auto, tensorflow-gpu, webgpu, tensorflow, wasm, cpu\./);
    assert.doesNotMatch(r.stderr, /--set backend/);
  }
});

test('deploy render --preset NAME renders what --config presets/NAME.yaml renders; one of the two is required', () => {
  const common = ['--workers', '16', '--image', 'ghcr.io/onelora/onelora:0.1.0', '--out', 'my-overlays/x', '--dry-run'];
  const byPreset = cli('deploy', 'render', '--preset', 'llama2-7b-metamath', ...common);
  assert.equal(byPreset.status, 0, byPreset.stderr);
  const byConfig = cli('deploy', 'render', '--config', 'presets/llama2-7b-metamath.yaml', ...common);
  assert.equal(byConfig.status, 0, byConfig.stderr);
  assert.equal(byPreset.stdout, byConfig.stdout);
  assert.match(byPreset.stdout, /llama2-7b-metamath/);
  const neither = cli('deploy', 'render', ...common);
  assert.equal(neither.status, 2);
  assert.match(neither.stderr, /exactly one of --preset NAME or --config FILE/);
  const unknown = cli('deploy', 'render', '--preset', 'nope', ...common);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /--preset nope: no such preset \(available: demo, /);
});

// `onelora bench step` and `onelora bench methods` run and print their fields (never timings).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ablationGrid, bestFromMetrics, formatMethodsTable } from '../../src/bench/methods.js';
import { markdownTable } from '../../src/bench/report.js';
import { tmpDir } from '../helpers.js';

const onelora = (...args: string[]): Record<string, unknown> => {
  const out = execFileSync('node', ['bin/onelora.js', ...args, '--backend', 'wasm', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return JSON.parse(out.trim().split('\n').pop() as string) as Record<string, unknown>;
};

test('bench step prints step_s, tokens_per_s, peak_bytes and trainable for a tiny LLaMA', () => {
  for (const method of ['1lora', 'lora:r=1']) {
    const r = onelora('bench', 'step', '--vocab', '32', '--dim', '16', '--layers', '1', '--heads', '2', '--ffn', '24', '--seq', '8', '--batch', '2', '--reps', '1', '--method', method);
    for (const k of ['step_s', 'tokens_per_s', 'peak_bytes', 'trainable']) assert.equal(typeof r[k], 'number', `${method}: ${k}`);
    assert.equal(r.trainable, method === '1lora' ? 16 * 4 + 24 * 2 + 16 : (16 + 16) * 4 + (16 + 24) * 2 + (24 + 16));
  }
});

test('bench methods writes the table, the bubble plot (SVG, PNG) and the four axes per method, and tiny-dit\'s sample FID beside the loss', () => {
  const dir = tmpDir('bench');
  const r = onelora('bench', 'methods', '--task', 'tiny-dit', '--methods', '1lora,bitfit', '--steps', '1', '--fid-samples', '10', '--report', dir);
  const results = r.results as Record<string, unknown>[];
  assert.deepEqual(results.map((x) => x.method), ['1lora', 'bitfit']);
  for (const x of results) for (const k of ['time_to_best_s', 'value', 'peak_bytes', 'trainable', 'fid', 'fid_before']) assert.equal(typeof x[k], 'number', k);
  // The same base, noise and classes before training: one figure for every method; the trained ones differ from it.
  assert.equal(results[0]!.fid_before, results[1]!.fid_before);
  for (const x of results) assert.ok((x.fid as number) > 0 && x.fid !== x.fid_before, JSON.stringify(x));
  const saved = JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8')) as { results: Record<string, unknown>[] };
  assert.deepEqual(saved.results.map((x) => x.fid), results.map((x) => x.fid));
  const md = fs.readFileSync(path.join(dir, 'report.md'), 'utf8');
  assert.match(md, /\| method \| time to best \(s\) \| best loss ↓ \| sample FID ↓ \| step \|/);
  assert.ok(md.includes(`| ${(results[0]!.fid as number).toFixed(3)} |`), md);
  assert.match(md, /The base before training: [\d.]+/);
  for (const f of ['report.md', 'bubbles.svg', 'bubbles.png', 'results.json']) assert.ok(fs.statSync(path.join(dir, f)).size > 0, f);
  assert.match(fs.readFileSync(path.join(dir, 'bubbles.svg'), 'utf8'), /<svg/);
  assert.deepEqual([...fs.readFileSync(path.join(dir, 'bubbles.png')).subarray(1, 4)], [0x50, 0x4e, 0x47]);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('bench methods reports a method with nothing to train (norms on a DiT) and runs the others; exit 1', () => {
  const dir = tmpDir('bench');
  const r = spawnSync('node', ['bin/onelora.js', 'bench', 'methods', '--task', 'tiny-dit', '--methods', 'norms,bitfit', '--steps', '1', '--fid-samples', '0', '--report', dir, '--backend', 'wasm', '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop() as string) as { results: { method: string }[]; failed: { method: string; error: string }[] };
  assert.deepEqual(out.results.map((x) => x.method), ['bitfit']);
  assert.ok(!('fid' in out.results[0]!), '--fid-samples 0: no FID');
  assert.equal(out.failed.length, 1);
  assert.equal(out.failed[0]!.method, 'norms');
  assert.match(out.failed[0]!.error, /'norms' finds nothing to train in .*demo-dit/);
  assert.match(fs.readFileSync(path.join(dir, 'report.md'), 'utf8'), /\*\*norms failed\*\*: method 'norms' finds nothing to train/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the ablation grid is every combination of 1lora, β, γ and norms; best-of-metrics picks the eval line', () => {
  const grid = ablationGrid();
  assert.equal(grid.length, 15);
  assert.ok(grid.includes('1lora+norms') && grid.includes('1lora+bitfit+difffit-gamma+norms'));
  const dir = tmpDir('bench');
  const file = path.join(dir, 'metrics.jsonl');
  fs.writeFileSync(file, ['{"step":1,"wall_s":2}', '{"step":1,"eval":{"loss":3}}', '{"step":2,"wall_s":4}', '{"step":2,"eval":{"loss":2.5}}', '{"step":3,"wall_s":6}', '{"step":3,"eval":{"loss":2.7}}'].join('\n'));
  assert.deepEqual(bestFromMetrics(file, 'loss', true), { step: 2, value: 2.5, wall: 4 });
  const md = markdownTable('t', [{ method: '1lora', time_to_best_s: 4, metric: 'loss', value: 2.5, lower_is_better: true, best_step: 2, peak_bytes: 1e6, trainable: 10, total_wall_s: 6 }]);
  assert.match(md, /\| 1lora \| 4\.0 \| 2\.5000 \| 2 \| 1\.0 \| 10 \|/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('bench pca: the Jacobi eigensolver returns orthonormal eigenvectors sorted by eigenvalue', async () => {
  const { sortedEigen: symmetricEigen } = await import('../../src/nn/linalg.js');
  const a = Float64Array.from([4, 1, 0, 1, 3, 0, 0, 0, 1]);
  const { values, vectors } = symmetricEigen(a, 3);
  assert.ok(values[0]! >= values[1]! && values[1]! >= values[2]!);
  for (const [i, v] of vectors.entries()) {
    const av = [0, 1, 2].map((r) => [0, 1, 2].reduce((s, c) => s + a[r * 3 + c]! * v[c]!, 0));
    av.forEach((x, r) => assert.ok(Math.abs(x - values[i]! * v[r]!) < 1e-9));
  }
});

test('bench methods without --json prints a table, one aligned row per method, not JSON', () => {
  const out = execFileSync('node', ['bin/onelora.js', 'bench', 'methods', '--task', 'tiny-dit', '--methods', '1lora,bitfit', '--steps', '1', '--fid-samples', '4', '--backend', 'wasm'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  assert.throws(() => JSON.parse(out));
  const lines = out.trim().split('\n');
  assert.equal(lines[0], 'tiny-dit:');
  assert.match(lines[1] as string, /^method +time to best \(s\) +best loss ↓ +sample FID ↓ +step +peak memory \(MB\) +trainable params$/);
  assert.deepEqual(lines.slice(2).map((l) => l.split(/ +/)[0]), ['1lora', 'bitfit']);
  for (const l of lines.slice(2)) assert.match(l, /^\w+ +[\d.]+ +[\d.]+ +[\d.]+ +\d+ +[\d.]+ +[\d,]+$/);
  // right-aligned figures: every row ends where the header does
  assert.ok(lines.slice(1).every((l) => l.length === (lines[1] as string).length), out);
  const text = formatMethodsTable('t', [{ method: '1lora', time_to_best_s: 4, metric: 'accuracy', value: 0.5, lower_is_better: false, best_step: 2, peak_bytes: 1e6, trainable: 1234, total_wall_s: 6 }],
    [{ method: 'norms', error: 'nothing to train' }], ['r/report.md']);
  assert.equal(text, ['t:', 'method  time to best (s)  best accuracy ↑  step  peak memory (MB)  trainable params', '1lora                4.0           0.5000     2               1.0             1,234', 'norms failed: nothing to train', 'wrote r/report.md'].join('\n'));
});

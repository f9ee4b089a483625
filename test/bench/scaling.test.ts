// `onelora bench scaling` end to end on a tiny config (real train and launch processes, real
// ZeroMQ and gRPC), and `bench step --vs`: the fields and their arithmetic, never the timings.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { initBackend } from '../../src/backend/select.js';
import { toYaml } from '../../src/config/index.js';
import { readRun, type ScalingResult } from '../../src/bench/scaling.js';
import { tmpDir } from '../helpers.js';
import { tinyConfig, tinyLmRun } from '../train/helpers.js';

await initBackend('wasm');

const onelora = (...args: string[]): unknown => {
  const out = execFileSync('node', ['bin/onelora.js', ...args, '--backend', 'wasm', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ONELORA_LOG: 'warn' } });
  return JSON.parse(out.trim().split('\n').pop() as string);
};

test('bench scaling: ceilings, independent trainers and launch per worker count; speed-ups against 1; equal final loss', async () => {
  const dir = await tinyLmRun();
  const cfgFile = path.join(dir, 'run.yaml');
  fs.writeFileSync(cfgFile, toYaml(tinyConfig(dir)));
  const out = tmpDir('scaling');
  const r = onelora('bench', 'scaling', '--config', cfgFile, '--workers', '2', '--max-steps', '4', '--skip', '1', '--ceiling-seconds', '0.3', '--output', out) as ScalingResult;
  assert.equal(r.rounds.length, 1);
  const rows = r.rounds[0]!.rows;
  assert.deepEqual(rows.map((x) => x.workers), [1, 2]);
  assert.equal(rows[0]!.launch_speedup, 1);
  assert.equal(rows[0]!.independent_speedup, 1);
  const two = rows[1]!;
  for (const k of ['matmul_gflops', 'independent_samples_per_s', 'matmul_speedup', 'independent_speedup', 'launch_speedup', 'efficiency'] as const) {
    assert.ok(Number.isFinite(two[k]) && two[k] > 0, `${k} = ${two[k]}`);
  }
  assert.ok(Math.abs(two.launch_speedup - two.launch.samples_per_s / rows[0]!.launch.samples_per_s) < 1e-9);
  assert.ok(Math.abs(two.efficiency - two.launch_speedup / two.independent_speedup) < 1e-9);
  // One global batch per step whatever the worker count: the same loss at the end.
  assert.ok(Math.abs(two.launch.final_loss - rows[0]!.launch.final_loss) < 1e-4, `${two.launch.final_loss} vs ${rows[0]!.launch.final_loss}`);
  // samples/s is global batch / seconds per step over steps 2–4 of the run's own metrics.
  const again = readRun(path.join(out, 'round-1', 'launch-2'), 1);
  assert.equal(again.samples_per_s, two.launch.samples_per_s);
  assert.ok(Math.abs(again.samples_per_s * again.s_per_step - 8) < 1e-9);
  for (const d of ['independent-2-0', 'independent-2-1', 'launch-1', 'launch-2']) assert.ok(fs.existsSync(path.join(out, 'round-1', d, 'metrics.jsonl')), d);
  assert.equal(r.median[1]!.launch_speedup, two.launch_speedup);
});

test('bench step --vs: both methods in one process, steps by turns, and the median ratio', () => {
  const r = onelora('bench', 'step', '--vocab', '32', '--dim', '16', '--layers', '1', '--heads', '2', '--ffn', '24', '--seq', '8', '--batch', '2', '--reps', '3', '--method', '1lora', '--vs', 'bitfit') as
    { a: { method: string; trainable: number; peak_bytes: number }; b: { method: string; trainable: number }; pairs: number; ratio: number; ratio_min: number; ratio_max: number };
  assert.equal(r.a.method, '1lora');
  assert.equal(r.b.method, 'bitfit');
  assert.equal(r.a.trainable, r.b.trainable, 'one vector per linear layer either way');
  assert.equal(r.pairs, 3);
  assert.ok(r.ratio_min <= r.ratio && r.ratio <= r.ratio_max && r.ratio > 0);
  assert.ok(r.a.peak_bytes > 0);
});

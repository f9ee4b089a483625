// `bench methods --task tiny-depth` (a real process): RMSE is the metric, lower is better, and the
// counts are the adapter's (1LoRA 1,152; the paper's DiffFit for depth, γ + norms, 1,728).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

void test('bench methods --task tiny-depth: 2 steps of two methods', () => {
  const r = spawnSync(process.execPath, ['bin/onelora.js', 'bench', 'methods', '--task', 'tiny-depth', '--methods', '1lora,difffit-gamma+norms', '--steps', '2', '--warmup-steps', '0', '--backend', 'wasm', '--json'],
    { encoding: 'utf8', env: { ...process.env, ONELORA_LOG: 'warn' } });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { results: { method: string; metric: string; lower_is_better: boolean; value: number; trainable: number }[] };
  assert.deepEqual(j.results.map((x) => [x.method, x.metric, x.lower_is_better, x.trainable]), [['1lora', 'rmse', true, 1152], ['difffit-gamma+norms', 'rmse', true, 1728]]);
  assert.ok(j.results.every((x) => x.value > 0 && x.value < 80));
});

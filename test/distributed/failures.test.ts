// Multi-process failure paths beyond launch.test.ts: a rank reporting NaN stops the whole job
// cleanly (`onelora launch` exits 1 naming the step and rank), and --min-workers lets a job lose a
// worker for good and finish with fewer at the same global batch, no sample lost or repeated.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { initBackend } from '../../src/backend/select.js';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { toYaml } from '../../src/config/index.js';
import { train } from '../../src/train/trainer.js';
import { launch } from '../../coordinator/launcher.js';
import { tinyConfig, tinyLmRun, tmpDir } from '../train/helpers.js';

await initBackend('wasm');
const dir = await tinyLmRun();
const BIN = new URL('../../bin/onelora.js', import.meta.url).pathname;

function adapter(out: string): Map<string, Float32Array> {
  const t = readSafetensors(path.join(out, 'adapter', 'adapter_model.safetensors')).tensors;
  return new Map([...t].map(([k, v]) => [k, v.data as Float32Array]));
}

test('onelora launch: a rank reporting NaN stops every worker; exit 1 naming the step and the rank', async () => {
  const cfgFile = path.join(tmpDir('nan'), 'run.yaml');
  fs.writeFileSync(cfgFile, toYaml(tinyConfig(dir, { batch: { global: 4, micro: 2 } }, ['distributed.allreduce_timeout_s=20'])));
  const output = tmpDir('nan-out');
  const child = spawn(process.execPath, [BIN, 'launch', '--workers', '2', '--config', cfgFile, '--output', output, '--backend', 'wasm', '--max-steps', '4',
    '--set', 'optim.lr=1e30', '--set', 'optim.grad_clip=0'], { env: { ...process.env, ONELORA_LOG: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.equal(code, 1, stderr);
  const m = /onelora: error: step (\d+): rank (\d) reported a non-finite loss or gradient/.exec(stderr);
  assert.ok(m, stderr);
  assert.ok(Number(m[1]) >= 1 && Number(m[1]) <= 4);
  assert.ok(!fs.existsSync(path.join(output, 'adapter')), 'no adapter is published for a failed run');
});

test('a worker killed before it registers is a failure: restarted once, the run finishes as configured', async () => {
  const marker = path.join(tmpDir('fault'), 'fired');
  const output = tmpDir('pre-register');
  const cfg = tinyConfig(dir, { batch: { global: 4, micro: 2 } }, ['distributed.allreduce_timeout_s=20', 'distributed.max_failures=1']);
  const r = await launch({ cfg, workers: 2, output, maxSteps: 2, quiet: true, backend: 'wasm', heartbeatTimeoutMs: 20_000, formTimeoutMs: 60_000,
    env: { ONELORA_LOG: 'warn', ONELORA_TEST_FAULT: `kill-before-register:1:0:${marker}` } });
  assert.ok(fs.existsSync(marker), 'the fault fired');
  assert.equal(r.restarts, 1);
  assert.equal(r.summary.steps, 2);
});

test('--min-workers 2: kill -9 of one of 3 workers, no restart; 2 finish the run at the same global batch, no sample lost or repeated', async () => {
  // global 12 = 3 × 2 × 2 = 2 × 2 × 3: the same global batch before and after the loss.
  const batch = { batch: { global: 12, micro: 2 } };
  const cfg = tinyConfig(dir, batch, ['distributed.allreduce_timeout_s=20', 'distributed.workers=3', 'distributed.min_workers=2', 'distributed.max_failures=1']);
  const ref = tmpDir('single12');
  await train(tinyConfig(dir, batch), { output: ref, maxSteps: 3, quiet: true });
  const logDir = tmpDir('samples');
  const marker = path.join(tmpDir('fault'), 'fired');
  const output = tmpDir('min-workers');
  // The policy decides continue-with-fewer (min_workers 2, within max_failures 1): the launcher restarts nobody.
  const r = await launch({ cfg, workers: 3, output, maxSteps: 3, quiet: true, backend: 'wasm', heartbeatTimeoutMs: 20_000,
    env: { ONELORA_SAMPLE_LOG: logDir, ONELORA_LOG: 'warn', ONELORA_TEST_FAULT: `kill:2:2:${marker}` } });
  assert.ok(fs.existsSync(marker), 'the fault fired');
  assert.equal(r.restarts, 0);
  assert.equal(r.summary.steps, 3);
  const lines = fs.readdirSync(logDir).flatMap((f) => fs.readFileSync(path.join(logDir, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; rank: number; generation: number; sample_ids: number[] }));
  const trained: number[] = [];
  for (let step = 1; step <= 3; step++) {
    const all = lines.filter((l) => l.step === step);
    const last = Math.max(...all.map((l) => l.generation));
    const kept = all.filter((l) => l.generation === last);
    assert.equal(kept.length, step === 1 ? 3 : 2, `step ${step}: ranks ${JSON.stringify(kept.map((l) => l.rank))}`);
    const ids = kept.flatMap((l) => l.sample_ids);
    assert.equal(ids.length, 12, `step ${step}: the whole global batch`);
    trained.push(...ids);
  }
  assert.equal(new Set(trained).size, 36, 'no sample repeated across steps (one epoch of 48 rows)');
  // The same global batch at every step: the adapter is the single-process one.
  const want = adapter(ref);
  let d = 0;
  for (const [k, x] of adapter(output)) {
    const y = want.get(k) as Float32Array;
    for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i]! - y[i]!));
  }
  assert.ok(d <= 1e-5, `max |Δ| ${d}`);
});

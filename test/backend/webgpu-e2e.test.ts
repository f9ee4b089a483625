// The GPU paths end to end on the webgpu backend, where a synchronous read fails (tfjs-webgpu's
// dataSync needs OffscreenCanvas, which Node lacks): a train step with an evaluation and 2-token
// greedy answers, the adapter and checkpoint written, merge and generate as CLI processes, and a
// 2-worker launch step (real gRPC and ZeroMQ). The step's loss equals wasm's. Without an adapter
// the tests say why in one line (a failure under ONELORA_REQUIRE_WEBGPU=1, as in CI).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { initBackend } from '../../src/backend/select.js';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { UserError } from '../../src/errors.js';
import { train } from '../../src/train/trainer.js';
import { launch } from '../../coordinator/launcher.js';
import { tinyConfig, tinyLmRun, tmpDir } from '../train/helpers.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'onelora.js');

let missing: string | null = null;
try {
  await initBackend('webgpu');
} catch (err) {
  if (!(err instanceof UserError)) throw err;
  missing = err.message;
}
const skip = missing && process.env.ONELORA_REQUIRE_WEBGPU !== '1' ? `webgpu: ${missing}` : false;

function cli(...args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 300_000, env: { ...process.env, ONELORA_LOG: 'warn' } });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

const adapterOf = (out: string): Map<string, Float32Array> =>
  new Map([...readSafetensors(path.join(out, 'adapter', 'adapter_model.safetensors')).tensors].map(([k, v]) => [k, v.data as Float32Array]));

test('webgpu: train step + eval + generation, merge, generate and a 2-worker launch, no synchronous read', { skip }, async () => {
  assert.equal(missing, null, `webgpu did not run: ${missing}`);
  await initBackend('wasm');
  const dir = await tinyLmRun(24);
  const cfg = tinyConfig(dir, { batch: { global: 4, micro: 2 }, eval: { every: 1, max_batches: 1, generate: true, max_new_tokens: 2 } }, ['distributed.allreduce_timeout_s=60']);
  const onWasm = await train(cfg, { output: tmpDir('wg-wasm'), maxSteps: 1, quiet: true });

  await initBackend('webgpu');
  const out = tmpDir('wg-train');
  const s = await train(cfg, { output: out, maxSteps: 1, quiet: true });
  assert.equal(s.backend, 'webgpu');
  assert.ok(Math.abs(s.final_loss - onWasm.final_loss) <= 1e-4 * Math.abs(onWasm.final_loss), `loss ${s.final_loss} vs wasm ${onWasm.final_loss}`);
  assert.ok(s.eval_after && Number.isFinite(s.eval_after.loss), 'evaluated');
  assert.ok(fs.existsSync(path.join(out, 'checkpoints', 'latest')), 'checkpointed');

  const merged = path.join(tmpDir('wg-merge'), 'm');
  const m = cli('merge', '--model', path.join(dir, 'model'), '--adapter', path.join(out, 'adapter'), '--out', merged, '--backend', 'webgpu');
  assert.equal(m.status, 0, m.err);
  const g = cli('generate', '--model', merged, '--prompt-ids', '1,5,9', '--max-new-tokens', '2', '--greedy', '--backend', 'webgpu', '--json');
  assert.equal(g.status, 0, g.err);
  assert.equal((JSON.parse(g.out.trim().split('\n').pop() as string) as { ids: number[] }).ids.length, 2);

  const launched = tmpDir('wg-launch');
  const r = await launch({ cfg, workers: 2, output: launched, maxSteps: 1, quiet: true, backend: 'webgpu', env: { ONELORA_LOG: 'warn' }, heartbeatTimeoutMs: 120_000 });
  assert.equal(r.summary.steps, 1);
  assert.ok(Math.abs(r.summary.final_loss - s.final_loss) <= 1e-4 * Math.abs(s.final_loss), `launch loss ${r.summary.final_loss} vs ${s.final_loss}`);
  const [a, b] = [adapterOf(launched), adapterOf(out)];
  for (const [k, x] of a) {
    const y = b.get(k) as Float32Array;
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i]! - y[i]!) <= 1e-4, `${k}[${i}]: ${x[i]} vs ${y[i]}`);
  }
});

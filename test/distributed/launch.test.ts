// Multi-process tests of the distributed runtime on loopback: a coordinator in this process
// (coordinator/launcher.ts), real `onelora worker` child processes, real gRPC and ZeroMQ, the tiny
// LLaMA run of test/train/helpers.ts. Equivalence with the single-process trainer, failures survived.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { initBackend } from '../../src/backend/select.js';
import { readCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { CoordinatorClient } from '../../src/comm/proto.js';
import type { RunConfig } from '../../src/config/index.js';
import { train } from '../../src/train/trainer.js';
import { launch } from '../../coordinator/launcher.js';
import { Coordinator } from '../../coordinator/server.js';
import { tinyConfig, tinyLmRun, tmpDir } from '../train/helpers.js';

await initBackend('wasm');
const dir = await tinyLmRun();
// global 8 = 1 × 2 × 4 = 2 × 2 × 2 = 4 × 2 × 1: every world size below trains the same batches.
const cfg = (sets: string[] = []): RunConfig => tinyConfig(dir, { batch: { global: 8, micro: 2 } }, ['distributed.allreduce_timeout_s=20', ...sets]);
const STEPS = 3;

function adapter(out: string): Map<string, Float32Array> {
  const t = readSafetensors(path.join(out, 'adapter', 'adapter_model.safetensors')).tensors;
  return new Map([...t].map(([k, v]) => [k, v.data as Float32Array]));
}

function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  let d = 0;
  for (const [k, x] of a) {
    const y = b.get(k) as Float32Array;
    for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i]! - y[i]!));
  }
  return d;
}

interface SampleLine { step: number; rank: number; generation: number; sample_ids: number[]; bytes_sent: number; bytes_received: number; floats: number }
function sampleLog(logDir: string): SampleLine[] {
  return fs.readdirSync(logDir).flatMap((f) => fs.readFileSync(path.join(logDir, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as SampleLine));
}

let single3: Map<string, Float32Array> | null = null;
async function reference(steps: number): Promise<Map<string, Float32Array>> {
  if (steps === STEPS && single3) return single3;
  const out = tmpDir('single');
  await train(cfg(), { output: out, maxSteps: steps, quiet: true });
  const a = adapter(out);
  if (steps === STEPS) single3 = a;
  return a;
}

async function launched(workers: number, opts: { sets?: string[]; fault?: string; output?: string; resume?: boolean; maxSteps?: number; heartbeatTimeoutMs?: number } = {}) {
  const output = opts.output ?? tmpDir(`launch${workers}`);
  const logDir = tmpDir('samples');
  const env: NodeJS.ProcessEnv = { ONELORA_SAMPLE_LOG: logDir, ONELORA_LOG: 'warn', ...(opts.fault ? { ONELORA_TEST_FAULT: opts.fault } : {}) };
  const r = await launch({ cfg: cfg(opts.sets), workers, output, maxSteps: opts.maxSteps ?? STEPS, quiet: true, resume: opts.resume, backend: 'wasm', env, heartbeatTimeoutMs: opts.heartbeatTimeoutMs ?? 20_000 });
  return { ...r, output, samples: sampleLog(logDir) };
}

for (const workers of [1, 2, 4]) {
  test(`launch --workers ${workers} trains the single-process adapter; ranks' samples are disjoint; gradients crossed ZeroMQ`, async () => {
    const want = await reference(STEPS);
    const r = await launched(workers, { sets: ['eval.every=2'] });
    assert.equal(r.summary.steps, STEPS);
    // rank 0 evaluates before step 1, every 2 steps and at the last; the summary keeps the best, as train does
    const evals = fs.readFileSync(path.join(r.output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((x) => JSON.parse(x) as { step: number; eval?: { loss: number } }).filter((x) => x.eval);
    assert.deepEqual(evals.map((x) => x.step), [0, 2, 3]);
    const best = evals.filter((x) => x.step > 0).reduce((a, x) => (x.eval!.loss < a.eval!.loss ? x : a));
    assert.deepEqual(r.summary.best, { step: best.step, metric: 'loss', value: best.eval!.loss });
    assert.equal(r.summary.eval_after?.loss, evals.at(-1)!.eval!.loss);
    for (const f of ['metrics.jsonl', 'config.yaml', 'summary.json', 'adapter/adapter_config.json', 'checkpoints/latest']) assert.ok(fs.existsSync(path.join(r.output, f)), f);
    const d = maxDiff(adapter(r.output), want);
    assert.ok(d <= 1e-5, `max |Δ| ${d}`);
    for (let step = 1; step <= STEPS; step++) {
      const lines = r.samples.filter((l) => l.step === step);
      assert.equal(lines.length, workers);
      const ids = lines.flatMap((l) => l.sample_ids);
      assert.equal(ids.length, 8, 'the whole global batch, once');
      assert.equal(new Set(ids).size, 8, `step ${step}: ranks' sample ids overlap: ${JSON.stringify(lines.map((l) => l.sample_ids))}`);
    }
    for (const l of r.samples.filter((x) => x.step === 1)) {
      // direct all-reduce (small buffer): (n-1) whole fused buffers out and in per rank
      assert.equal(l.bytes_sent, (workers - 1) * l.floats * 4);
      assert.equal(l.bytes_received, (workers - 1) * l.floats * 4);
    }
    const m = fs.readFileSync(path.join(r.output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((x) => JSON.parse(x) as Record<string, unknown>).filter((x) => !('eval' in x));
    assert.equal(m.length, STEPS);
    for (const k of ['step', 'loss', 'lr', 'tokens_per_s', 'peak_bytes', 'wall_s', 'data_wait_s', 'compute_s', 'allreduce_s', 'optimizer_s', 'straggler']) assert.ok(k in m[0]!, k);
  });
}

test('kill -9 of a worker mid-run: it is restarted, the group re-formed, and the adapter is the uninterrupted one', async () => {
  const marker = path.join(tmpDir('fault'), 'fired');
  const r = await launched(2, { fault: `kill:1:2:${marker}` });
  assert.ok(fs.existsSync(marker), 'the fault fired');
  assert.equal(r.restarts, 1);
  assert.equal(r.summary.steps, STEPS);
  // the restarted rank rejoined: the last step ran on both ranks of the re-formed group
  assert.deepEqual(r.samples.filter((l) => l.step === STEPS).map((l) => [l.rank, l.generation]).sort(), [[0, 2], [1, 2]]);
  const d = maxDiff(adapter(r.output), await reference(STEPS));
  assert.ok(d <= 1e-5, `max |Δ| ${d}`);
  // every sample of every step trained exactly once in the surviving generation's record
  for (let step = 1; step <= STEPS; step++) {
    const lines = r.samples.filter((l) => l.step === step);
    const last = Math.max(...lines.map((l) => l.generation));
    assert.equal(new Set(lines.filter((l) => l.generation === last).flatMap((l) => l.sample_ids)).size, 8);
  }
});

test('a rank whose main thread is busy for 3 heartbeat timeouts is not declared lost: it beats from its own thread', async () => {
  const marker = path.join(tmpDir('fault'), 'fired');
  // 4 s, not less: on a loaded 2-core machine a heartbeat thread can itself wait over a second for a core.
  const r = await launched(2, { fault: `stall:1:3:${marker}:12000`, heartbeatTimeoutMs: 4000 });
  assert.ok(fs.existsSync(marker), 'the stall happened');
  assert.equal(r.restarts, 0);
  assert.deepEqual([...new Set(r.samples.map((l) => l.generation))], [1], 'one group from start to end: no failure, no re-forming');
  assert.equal(r.summary.steps, STEPS);
});

test('kill during a checkpoint write leaves the previous checkpoint intact; coordinator --resume finishes the run', async () => {
  const marker = path.join(tmpDir('fault'), 'fired');
  const output = tmpDir('ckpt');
  const sets = ['checkpoint.every=2', 'checkpoint.keep=3', 'distributed.max_failures=0'];
  await assert.rejects(launched(2, { sets, fault: `kill-in-checkpoint:0:4:${marker}`, output, maxSteps: 4 }), /exceeds max_failures 0/);
  assert.ok(fs.existsSync(marker), 'the fault fired');
  const ckDir = path.join(output, 'checkpoints');
  assert.equal(fs.readFileSync(path.join(ckDir, 'latest'), 'utf8').trim(), 'step-2');
  assert.ok(fs.readdirSync(ckDir).some((n) => n.startsWith('.tmp-step-4')), 'the interrupted write is still a temporary directory');
  assert.ok(!fs.existsSync(path.join(ckDir, 'step-4')));
  const ck = readCheckpoint(path.join(ckDir, 'step-2'));
  assert.equal(ck.state.step, 2);
  assert.equal(ck.state.samples_seen, 16);
  const r = await launched(2, { sets, output, resume: true, maxSteps: 4 });
  assert.equal(r.summary.steps, 4);
  assert.deepEqual([...new Set(r.samples.map((l) => l.step))].sort(), [3, 4], 'resumed after step 2');
  const d = maxDiff(adapter(output), await reference(4));
  assert.ok(d <= 1e-5, `max |Δ| ${d}`);
});

test('a wrong job token is refused by the coordinator (UNAUTHENTICATED) and the worker exits 2', async () => {
  const c = new Coordinator({ cfg: cfg(), workers: 1, output: tmpDir('token'), token: 'right', bind: '127.0.0.1:0', quiet: true });
  await c.start();
  try {
    const client = new CoordinatorClient(`127.0.0.1:${c.port}`, 'wrong');
    await assert.rejects(client.register({ requested_rank: 0, zmq_endpoint: 'tcp://127.0.0.1:1', hostname: 'h', pid: 1, device: 'x', curve_public_key: '' }, 5000), (e: grpc.ServiceError) => e.code === grpc.status.UNAUTHENTICATED);
    client.close();
    const bin = new URL('../../bin/onelora.js', import.meta.url).pathname;
    // spawn, not spawnSync: the coordinator answering the worker lives in this process's event loop
    const child = spawn(process.execPath, [bin, 'worker', '--coordinator', `127.0.0.1:${c.port}`, '--zmq-port', '0'], { env: { ...process.env, ONELORA_JOB_TOKEN: 'wrong', ONELORA_LOG: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 2, stderr);
    assert.match(stderr, /refused this worker's job token/);
  } finally {
    await c.shutdown();
  }
});

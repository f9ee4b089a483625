// `npm run check:scale` (docs/architecture.md#what-is-checked-where): the paper's world sizes as local worker processes on the
// tiny LLaMA of test/train/helpers.ts — 16 workers × micro 4 × accumulation 2 = 128 and
// 64 workers × micro 2 × accumulation 1 = 128 — each for a few steps through `onelora launch`'s
// code (coordinator here, real worker processes, real gRPC and ZeroMQ). Prints wall time and samples/s.
import path from 'node:path';
import { initBackend } from '../../src/backend/select.js';
import { launch } from '../../coordinator/launcher.js';
import { readJsonLines } from '../../src/json-file.js';
import { tinyConfig, tinyLmRun, tmpDir } from '../train/helpers.js';

await initBackend('wasm');
const dir = await tinyLmRun(320);
const steps = Number(process.env.SCALE_STEPS ?? 2);
const setups = [
  { workers: 16, micro: 4 },
  { workers: 64, micro: 2 },
].filter((s) => !process.env.SCALE_WORKERS || process.env.SCALE_WORKERS.split(',').map(Number).includes(s.workers));
const rows: Record<string, unknown>[] = [];
for (const s of setups) {
  const cfg = tinyConfig(dir, { batch: { global: 128, micro: s.micro } }, ['distributed.allreduce_timeout_s=300', `schedule.total_steps=${steps}`]);
  const output = tmpDir(`scale${s.workers}`);
  const t0 = performance.now();
  const { summary, restarts } = await launch({ cfg, workers: s.workers, output, quiet: true, backend: 'wasm', env: { ONELORA_LOG: 'warn' }, heartbeatTimeoutMs: 120_000, formTimeoutMs: 900_000 });
  const wall = (performance.now() - t0) / 1000;
  const metrics = (readJsonLines(path.join(output, 'metrics.jsonl')) as Record<string, number>[]).filter((m) => !('eval' in m));
  const trainS = metrics.at(-1)!.wall_s - (metrics[0]!.wall_s - 0);
  const row = {
    workers: s.workers, micro: s.micro, accumulation: 128 / (s.workers * s.micro), steps: summary.steps, restarts,
    wall_s: Number(wall.toFixed(1)), job_samples_per_s: Number(((128 * summary.steps) / wall).toFixed(2)),
    steps_after_first_samples_per_s: metrics.length > 1 ? Number(((128 * (metrics.length - 1)) / trainS).toFixed(2)) : null,
    step_s: metrics.map((m) => Number(((m.wall_s ?? 0)).toFixed(1))), allreduce_s: metrics.map((m) => Number((m.allreduce_s ?? 0).toFixed(2))),
    final_loss: summary.final_loss,
  };
  rows.push(row);
  process.stderr.write(`check:scale ${JSON.stringify(row)}\n`);
}
process.stdout.write(JSON.stringify({ rows }) + '\n');

// What the coordinator writes while the job runs: metrics.jsonl lines (the fields of docs/architecture.md#run-outputs plus
// the time split and the straggler), the progress bar, Prometheus gauges, and at the end adapter/
// and summary.json in the single-process trainer's formats (src/train/metrics.ts, trainer.ts).
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import * as prom from 'prom-client';
import type { StepReport } from '../src/comm/proto.js';
import { writeFileAtomic } from '../src/checkpoint/checkpoint.js';
import { childLog } from '../src/log.js';
import { MetricsLog, Progress, updateBest, type Best, type StepMetrics } from '../src/train/metrics.js';
import type { TrainSummary } from '../src/train/trainer.js';

const log = childLog('coordinator');

const TIMING = ['data_wait_s', 'compute_s', 'allreduce_s', 'optimizer_s'] as const;

/** Metrics of `onelora_*` on the coordinator's /metrics (prom-client, its own registry). */
export class PromMetrics {
  readonly registry = new prom.Registry();
  readonly step = new prom.Gauge({ name: 'onelora_step', help: 'last committed optimizer step', registers: [this.registry] });
  readonly loss = new prom.Gauge({ name: 'onelora_loss', help: 'training loss of the last step', registers: [this.registry] });
  readonly samples = new prom.Gauge({ name: 'onelora_samples_seen', help: 'global sample counter', registers: [this.registry] });
  readonly workers = new prom.Gauge({ name: 'onelora_workers', help: 'workers in the current group', registers: [this.registry] });
  readonly generation = new prom.Gauge({ name: 'onelora_generation', help: 'group generation (re-formations + 1)', registers: [this.registry] });
  readonly failures = new prom.Counter({ name: 'onelora_failures_total', help: 'workers lost', registers: [this.registry] });
  readonly phase = new prom.Gauge({ name: 'onelora_step_phase_seconds', help: 'slowest rank per phase, last step', labelNames: ['phase'], registers: [this.registry] });
  private server: http.Server | null = null;

  /** Serves /metrics on 127.0.0.1:port (port 0: any); resolves with the port. */
  serve(port: number, host = '127.0.0.1'): Promise<number> {
    this.server = http.createServer((req, res) => {
      if (req.url !== '/metrics') return void res.writeHead(404).end();
      this.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    });
    return new Promise((resolve) => this.server!.listen(port, host, () => resolve((this.server!.address() as { port: number }).port)));
  }

  close(): void {
    this.server?.close();
  }
}

export interface StepOutcome {
  step: number;
  reports: readonly StepReport[];
  globalUnits: number;
  samples: number;
  stepSeconds: number;
  wallSeconds: number;
  causalLm: boolean;
}

/** metrics.jsonl + the one progress bar of the job + Prometheus. */
export class JobOutputs {
  readonly metrics: MetricsLog;
  readonly progress: Progress;
  peak = 0;
  lastLoss = NaN;
  evalBefore: Record<string, number> | null = null;
  evalAfter: Record<string, number> | null = null;
  /** The best of rank 0's evaluations (every eval.every steps and the last), as the trainer keeps it. */
  best: Best = null;

  constructor(
    readonly output: string,
    start: number,
    private readonly stopAt: number,
    readonly prom: PromMetrics,
    quiet = false,
    private readonly evalMetric = 'loss',
  ) {
    this.metrics = new MetricsLog(output);
    this.progress = new Progress(start, stopAt, quiet);
  }

  /** One line per committed step; the slowest rank (data wait + compute) is the straggler. */
  step(o: StepOutcome): void {
    const r0 = o.reports.find((r) => r.rank === 0) ?? o.reports[0]!;
    const before = prefixed(r0.metrics, 'eval_before.');
    if (before) {
      this.evalBefore = before;
      this.metrics.write({ step: o.step - 1, eval: before });
    }
    const loss = o.reports.reduce((a, r) => a + r.loss, 0);
    const slowest = (k: (typeof TIMING)[number]) => Math.max(...o.reports.map((r) => r.timing?.[k] ?? 0));
    const busy = (r: StepReport) => (r.timing?.data_wait_s ?? 0) + (r.timing?.compute_s ?? 0);
    const straggler = o.reports.reduce((a, r) => (busy(r) > busy(a) ? r : a));
    const peak = Math.max(...o.reports.map((r) => r.metrics.peak_bytes ?? 0));
    const m: StepMetrics = {
      step: o.step, loss, lr: r0.metrics.lr ?? 0,
      ...(o.causalLm ? { tokens_per_s: o.globalUnits / o.stepSeconds } : { samples_per_s: o.samples / o.stepSeconds }),
      peak_bytes: peak, wall_s: o.wallSeconds, grad_norm: r0.metrics.grad_norm,
      ...Object.fromEntries(TIMING.map((k) => [k, slowest(k)])),
      workers: o.reports.length,
      straggler: { rank: straggler.rank, busy_s: busy(straggler) },
    };
    this.metrics.write(m);
    this.progress.update(m);
    log.debug({ step: o.step, rank: straggler.rank, busy_s: busy(straggler) }, `straggler: rank ${straggler.rank}`);
    for (const k of TIMING) this.prom.phase.set({ phase: k }, slowest(k));
    this.prom.step.set(o.step);
    this.prom.loss.set(loss);
    this.peak = Math.max(this.peak, peak);
    this.lastLoss = loss;
    const ev = prefixed(r0.metrics, 'eval.');
    if (ev) {
      if (o.step === this.stopAt) this.evalAfter = ev;
      this.best = updateBest(this.best, o.step, this.evalMetric, ev);
      this.metrics.write({ step: o.step, eval: ev });
    }
  }

  close(): void {
    this.progress.stop();
    this.metrics.close();
  }
}

function prefixed(metrics: Record<string, number>, prefix: string): Record<string, number> | null {
  const entries = Object.entries(metrics).filter(([k]) => k.startsWith(prefix));
  return entries.length > 0 ? Object.fromEntries(entries.map(([k, v]) => [k.slice(prefix.length), v])) : null;
}

/** adapter/ of the run = the adapter of the final checkpoint (the final step is always checkpointed). */
export function publishAdapter(output: string, checkpointDir: string): void {
  const adapterDir = path.join(output, 'adapter');
  const tmp = `${adapterDir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.cpSync(path.join(checkpointDir, 'adapter'), tmp, { recursive: true });
  fs.rmSync(adapterDir, { recursive: true, force: true });
  fs.renameSync(tmp, adapterDir);
}

export function writeSummary(output: string, summary: TrainSummary): void {
  writeFileAtomic(path.join(output, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
}

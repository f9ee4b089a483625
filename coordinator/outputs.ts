// What the coordinator writes while the job runs: the single-process trainer's RunRecord
// (src/train/loop.ts: metrics.jsonl lines with the time split and the straggler, the progress
// bar, summary.json) fed from the ranks' reports, and Prometheus gauges.
import http from 'node:http';
import * as prom from 'prom-client';
import { listenOn } from '../src/comm/listen.js';
import type { StepReport } from '../src/comm/proto.js';
import { childLog } from '../src/log.js';
import { RunRecord, stepLine, type Schedule } from '../src/train/loop.js';
import type { TaskExample } from '../src/train/task.js';

const log = childLog('coordinator');

const PHASES = ['data_wait_s', 'compute_s', 'allreduce_s', 'optimizer_s'] as const;

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

  /** Serves /metrics on 127.0.0.1:port (port 0: any); resolves with the port, rejects with a UserError naming --metrics-port when it is taken. */
  serve(port: number, host = '127.0.0.1'): Promise<number> {
    this.server = http.createServer((req, res) => {
      if (req.url !== '/metrics') return void res.writeHead(404).end();
      this.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    });
    return listenOn(this.server, port, host, '--metrics-port');
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
  causalLm: boolean;
}

/** The run's RunRecord (the single-process trainer's metrics.jsonl, progress, summary) + Prometheus. */
export class JobOutputs {
  readonly record: RunRecord;

  constructor(
    output: string,
    schedule: Schedule,
    start: number,
    readonly prom: PromMetrics,
    opts: ConstructorParameters<typeof RunRecord>[3],
  ) {
    this.record = new RunRecord(output, schedule, start, opts);
  }

  /** One line per committed step from the ranks' reports; rank 0 evaluates for the group. */
  step(o: StepOutcome): void {
    const r0 = o.reports.find((r) => r.rank === 0) ?? o.reports[0]!;
    const before = prefixed(r0.metrics, 'eval_before.');
    if (before) this.record.before(o.step - 1, before);
    if (r0.examples_json) {
      const answers = JSON.parse(r0.examples_json) as { before?: TaskExample[]; after?: TaskExample[] };
      if (answers.before) this.record.answered('before', answers.before);
      if (answers.after) this.record.answered('after', answers.after);
    }
    const loss = o.reports.reduce((a, r) => a + r.loss, 0);
    const m = stepLine({
      step: o.step, loss, lr: r0.metrics.lr ?? 0, gradNorm: r0.metrics.grad_norm, units: o.globalUnits, samples: o.samples, causalLm: o.causalLm,
      stepSeconds: o.stepSeconds, wallSeconds: this.record.wallSeconds(),
      ranks: o.reports.map((r) => ({ rank: r.rank, peakBytes: r.metrics.peak_bytes ?? 0, timing: r.timing })),
    });
    this.record.stepped(m, prefixed(r0.metrics, 'eval.'));
    log.debug({ step: o.step, rank: m.straggler.rank, busy_s: m.straggler.busy_s }, `straggler: rank ${m.straggler.rank}`);
    for (const k of PHASES) this.prom.phase.set({ phase: k }, m[k]);
    this.prom.step.set(o.step);
    this.prom.loss.set(loss);
  }

  close(): void {
    this.record.close();
  }
}

function prefixed(metrics: Record<string, number>, prefix: string): Record<string, number> | null {
  const entries = Object.entries(metrics).filter(([k]) => k.startsWith(prefix));
  return entries.length > 0 ? Object.fromEntries(entries.map(([k, v]) => [k.slice(prefix.length), v])) : null;
}

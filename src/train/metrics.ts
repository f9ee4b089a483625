// Run outputs that grow during training: metrics.jsonl (one JSON object per optimizer step, and
// one per evaluation: docs/architecture.md#run-outputs) and the progress display — a cli-progress bar on a terminal,
// plain periodic log lines otherwise (CI logs, Kubernetes pods).
import fs from 'node:fs';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { childLog } from '../log.js';

const log = childLog('train');

export interface StepMetrics {
  step: number;
  loss: number;
  lr: number;
  tokens_per_s?: number;
  samples_per_s?: number;
  peak_bytes: number;
  wall_s: number;
  grad_norm?: number;
  [extra: string]: unknown;
}

/** The best evaluation so far: `metric` lower is better for a loss, higher for anything else. */
export type Best = { step: number; metric: string; value: number } | null;

/** `best` updated with the evaluation `ev` at `step` (RunRecord's rule, and rank 0's for its checkpoints). */
export function updateBest(best: Best, step: number, metric: string, ev: Record<string, number>): Best {
  const value = ev[metric];
  if (value === undefined || !Number.isFinite(value)) return best;
  const lower = metric === 'loss';
  return !best || (lower ? value < best.value : value > best.value) ? { step, metric, value } : best;
}

export class MetricsLog {
  private readonly fd: number;

  constructor(output: string) {
    this.fd = fs.openSync(path.join(output, 'metrics.jsonl'), 'a');
  }

  write(record: Record<string, unknown>): void {
    fs.writeSync(this.fd, JSON.stringify(record) + '\n');
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/** Bars drawing on the terminal now (each hides the cursor and line wrap until it stops). */
const live = new Set<cliProgress.SingleBar>();

/** Stops every bar, which gives the terminal its cursor and line wrap back: before an exit that skips Progress.stop. */
export function restoreTerminal(): void {
  for (const bar of live) bar.stop();
  live.clear();
}

export class Progress {
  private readonly bar: cliProgress.SingleBar | null;
  private lastLine = 0;

  constructor(
    private readonly start: number,
    private readonly total: number,
    private readonly quiet = false,
  ) {
    this.bar = process.stderr.isTTY && !quiet
      ? new cliProgress.SingleBar(
          { stream: process.stderr, format: 'train |{bar}| {value}/{total} steps | loss {loss} | lr {lr} | {rate}', hideCursor: true },
          cliProgress.Presets.shades_classic,
        )
      : null;
    this.bar?.start(total, start, { loss: '-', lr: '-', rate: '-' });
    if (this.bar) live.add(this.bar);
  }

  update(m: StepMetrics): void {
    const rate = m.tokens_per_s !== undefined ? `${Math.round(m.tokens_per_s)} tok/s` : `${(m.samples_per_s ?? 0).toFixed(1)} samples/s`;
    if (this.bar) {
      this.bar.update(m.step, { loss: m.loss.toFixed(4), lr: m.lr.toExponential(2), rate });
      return;
    }
    // Without a terminal: a line every ~10% of the run, plus the first and the last step.
    const every = Math.max(1, Math.round((this.total - this.start) / 10));
    if (!this.quiet && (m.step === this.start + 1 || m.step === this.total || m.step - this.lastLine >= every)) {
      this.lastLine = m.step;
      log.info({ step: m.step, loss: Number(m.loss.toFixed(5)), lr: m.lr, rate }, `step ${m.step}/${this.total}`);
    }
  }

  stop(): void {
    this.bar?.stop();
    if (this.bar) live.delete(this.bar);
  }
}

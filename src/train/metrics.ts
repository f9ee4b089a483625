// Run outputs that grow during training: metrics.jsonl (one JSON object per optimizer step, and
// one per evaluation: docs/architecture.md#run-outputs) and the progress display — one status line
// on a terminal, with log lines printed above it, plain periodic log lines otherwise (CI logs,
// Kubernetes pods).
import fs from 'node:fs';
import path from 'node:path';
import { childLog, setStderrSink } from '../log.js';
import { writingTo } from '../errors.js';

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
  const lower = metric === 'loss' || metric === 'rmse';
  return !best || (lower ? value < best.value : value > best.value) ? { step, metric, value } : best;
}

export class MetricsLog {
  private readonly fd: number;
  private readonly file: string;

  constructor(output: string) {
    this.file = path.join(output, 'metrics.jsonl');
    this.fd = writingTo(this.file, () => fs.openSync(this.file, 'a'));
  }

  write(record: Record<string, unknown>): void {
    writingTo(this.file, () => fs.writeSync(this.fd, JSON.stringify(record) + '\n'));
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/** What the progress line shows. */
export interface ProgressView {
  /** Steps done, of `total`; `start` were done before this process began (a resume). */
  step: number;
  start: number;
  total: number;
  loss?: number;
  lr?: number;
  /** "512 tok/s" or "3.2 samples/s". */
  rate?: string;
  elapsedS: number;
  /** Unknown before the first step of this process. */
  etaS?: number;
  /** Evaluation batches done and due, while an evaluation runs. */
  eval?: { done: number; total: number };
}

/** 75 s → "01:15", 3725 s → "1:02:05" (tqdm's style). */
function clock(seconds: number): string {
  const t = Math.max(0, Math.round(seconds));
  const two = (n: number): string => String(n).padStart(2, '0');
  const h = Math.floor(t / 3600);
  return h > 0 ? `${h}:${two(Math.floor(t / 60) % 60)}:${two(t % 60)}` : `${two(Math.floor(t / 60))}:${two(t % 60)}`;
}

const BAR_MIN = 10;
const BAR_MAX = 40;

/**
 * The status line, at most `width` - 1 characters (writing the last column makes some terminals
 * wrap), as tqdm writes it: `train 412/1200 |████░░░░| loss 2.3457 lr 1.50e-4 1234 tok/s 01:23<1:02:05`
 * (elapsed<ETA). Fields are dropped before anything wraps, least useful first: the rate, the
 * learning rate, the loss, then the bar; the count and the times go last.
 */
export function progressLine(v: ProgressView, width: number): string {
  const room = Math.max(1, width - 1);
  const done = v.eval ? v.eval.done : v.step;
  const of = v.eval ? v.eval.total : v.total;
  const head = v.eval ? `eval ${v.eval.done}/${v.eval.total} · step ${v.step}/${v.total}` : `train ${v.step}/${v.total}`;
  const times = `${clock(v.elapsedS)}<${v.etaS === undefined ? '?' : clock(v.etaS)}`;
  // In display order; `drop` is the order they go in.
  const optional = [
    { drop: 2, text: v.loss === undefined ? '' : `loss ${v.loss.toFixed(4)}` },
    { drop: 1, text: v.lr === undefined ? '' : `lr ${v.lr.toExponential(2)}` },
    { drop: 0, text: v.rate ?? '' },
  ].filter((f) => f.text);
  const line = (dropped: number, bar: number): string => {
    const filled = of > 0 ? Math.round((bar * Math.min(done, of)) / of) : 0;
    const fields = optional.filter((f) => f.drop >= dropped).map((f) => f.text);
    return [head, ...(bar > 0 ? [`|${'█'.repeat(filled)}${'░'.repeat(bar - filled)}|`] : []), ...fields, times].join(' ');
  };
  for (let dropped = 0; dropped <= 3; dropped++) {
    const bar = Math.min(BAR_MAX, room - line(dropped, 0).length - 3); // the bar's two edges and its space
    if (bar >= BAR_MIN) return line(dropped, bar);
  }
  for (let dropped = 0; dropped <= 3; dropped++) if (line(dropped, 0).length <= room) return line(dropped, 0);
  return head.slice(0, room);
}

const HIDE_CURSOR = '\x1b[?25l';
const SHOW_CURSOR = '\x1b[?25h';
const CLEAR_LINE = '\r\x1b[K';

/** Progress displays drawing on the terminal now (each hides the cursor until it stops). */
const live = new Set<Progress>();

/**
 * Stops every display and gives the terminal its cursor and line wrap back (`\x1b[?7h`, which a
 * bar that turned wrapping off would need): before an exit that skips Progress.stop (Ctrl-C).
 */
export function restoreTerminal(): void {
  for (const p of [...live]) p.stop();
  live.clear();
  if (process.stderr.isTTY) process.stderr.write('\x1b[?25h\x1b[?7h');
}

/**
 * The progress display. On a terminal: one status line redrawn in place (every update and each
 * second, for the clock), the cursor hidden meanwhile, and every stderr line written through
 * src/log.ts (this process's logs, a launch's workers' output) printed above it. Otherwise a log
 * line every ~10% of the run. Hand-written, not cli-progress: its stop() returns the cursor to
 * the row it saved at start (overwriting every line printed above the bar since) and it turns
 * the terminal's line wrap off; printing log lines above a live bar needs the clear, print and
 * redraw done here.
 */
export class Progress {
  private readonly tty: boolean;
  private readonly t0 = performance.now();
  /** Since when the steps are timed for the ETA: the start, or the end of the evaluation before the first step. */
  private tSteps = performance.now();
  private view: ProgressView;
  private timer: NodeJS.Timeout | null = null;
  private prevSink: ReturnType<typeof setStderrSink> = null;
  private lastLine = 0;
  /** This process's first step and when it ended. */
  private first: { step: number; at: number } | null = null;

  constructor(
    private readonly start: number,
    private readonly total: number,
    private readonly quiet = false,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = !!out.isTTY && !quiet;
    this.view = { step: start, start, total, elapsedS: 0 };
    if (!this.tty) return;
    out.write(HIDE_CURSOR);
    this.prevSink = setStderrSink((text) => this.printAbove(text));
    this.timer = setInterval(() => this.draw(), 1000);
    this.timer.unref();
    this.draw();
    live.add(this);
  }

  update(m: StepMetrics): void {
    const rate = m.tokens_per_s !== undefined ? `${Math.round(m.tokens_per_s)} tok/s` : `${(m.samples_per_s ?? 0).toFixed(1)} samples/s`;
    this.view = { ...this.view, step: m.step, loss: m.loss, lr: m.lr, rate, eval: undefined };
    this.first ??= { step: m.step, at: performance.now() };
    if (this.tty) {
      this.draw();
      return;
    }
    // Without a terminal: a line every ~10% of the run, plus the first and the last step.
    const every = Math.max(1, Math.round((this.total - this.start) / 10));
    if (!this.quiet && (m.step === this.start + 1 || m.step === this.total || m.step - this.lastLine >= every)) {
      this.lastLine = m.step;
      const eta = this.eta();
      log.info({ step: m.step, loss: Number(m.loss.toFixed(5)), lr: m.lr, rate, elapsed_s: Math.round(this.elapsed()), eta_s: eta === undefined ? undefined : Math.round(eta) },
        `step ${m.step}/${this.total}`);
    }
  }

  /** An evaluation has `done` of its `total` batches behind it. */
  evaluating(done: number, total: number): void {
    const running = done < total;
    if (!running && this.view.step === this.start) this.tSteps = performance.now();
    this.view = { ...this.view, eval: running ? { done, total } : undefined };
    if (this.tty) this.draw();
  }

  /** Draws the last state, ends the line and gives the terminal its cursor back. Idempotent. */
  stop(): void {
    live.delete(this);
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = null;
    this.view = { ...this.view, eval: undefined };
    this.out.write(CLEAR_LINE + this.text() + '\n' + SHOW_CURSOR);
    setStderrSink(this.prevSink);
  }

  private elapsed(): number {
    return (performance.now() - this.t0) / 1000;
  }

  /**
   * Seconds left at this process's pace (the evaluations every eval.every steps included), timed
   * from its first step on once there is a second: the first carries warm-up and, under launch,
   * the workers' start.
   */
  private eta(): number | undefined {
    const first = this.first;
    if (!first) return undefined;
    const now = performance.now();
    const perStep = this.view.step > first.step ? (now - first.at) / (this.view.step - first.step) : (first.at - this.tSteps) / (first.step - this.start);
    return (perStep / 1000) * (this.total - this.view.step);
  }

  private text(): string {
    return progressLine({ ...this.view, elapsedS: this.elapsed(), etaS: this.eta() }, this.out.columns || 80);
  }

  private draw(): void {
    if (this.timer) this.out.write(CLEAR_LINE + this.text());
  }

  private printAbove(text: string): void {
    this.out.write(CLEAR_LINE + (text.endsWith('\n') ? text : text + '\n'));
    this.draw();
  }
}

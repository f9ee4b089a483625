// The one training loop and its rules (docs/architecture.md). A single process (trainer.ts) drives
// it directly; a distributed group drives the same pieces from the coordinator's state machine
// (coordinator/state.ts decides when a step starts and whether it is checkpointed with
// `checkpointDue`, worker/step.ts ends each step with `finishStep`, coordinator/outputs.ts records
// it in a `RunRecord`). So both write the same metrics.jsonl lines, checkpoint the same steps,
// publish adapter/ the same way and write the same summary.json.
import fs from 'node:fs';
import path from 'node:path';
import { checkpointsDir, latestCheckpoint, readCheckpoint, removeStaleTemps, writeFileAtomic } from '../checkpoint/checkpoint.js';
import { configHash, loadConfig, toYaml, type RunConfig } from '../config/index.js';
import { InterruptedError, RunError, UserError, writingTo } from '../errors.js';
import { childLog } from '../log.js';
import { verifyInputs, recordInputs } from './inputs.js';
import { checkWritable, claimOutput, trimMetrics } from './run-dir.js';
import { MetricsLog, Progress, updateBest, type Best, type StepMetrics } from './metrics.js';
import { TensorBoardWriter } from '../watch/tensorboard.js';
import type { TaskExample } from './task.js';
import type { SampleFidRecord } from './tasks/diffusion-fid.js';

export interface TrainSummary {
  task?: string;
  steps: number;
  total_steps: number;
  method: string;
  trainable: number;
  head: number;
  backend: string;
  wall_s: number;
  peak_bytes: number;
  final_loss: number;
  eval_before: Record<string, number> | null;
  eval_after: Record<string, number> | null;
  best: Best;
  output: string;
  /** Causal LM with a tokenizer: held-out questions answered before and after training. */
  examples?: { question: string; before: string; after: string; expected: string }[];
  /** Diffusion with `diffusion.vae`: the sample grids and their tiny FID before and after training. */
  fid?: SampleFidRecord;
}

/** Which steps (1-based, up to `stopAt` inclusive) evaluate and which write a checkpoint. */
export interface Schedule {
  readonly stopAt: number;
  /** eval.every: 0 evaluates only after the last step. */
  readonly evalEvery: number;
  /** checkpoint.every: 0 checkpoints only the last step. */
  readonly checkpointEvery: number;
}

export function scheduleOf(cfg: RunConfig, stopAt: number): Schedule {
  return { stopAt, evalEvery: cfg.eval.every, checkpointEvery: cfg.checkpoint.every };
}

/** The run evaluates once before its first step, when that step is the run's first (not a resume). */
export const evaluatesBefore = (firstStep: number): boolean => firstStep === 1;

/** Every `evalEvery` steps and at the last one. */
function evaluatesAt(step: number, s: Schedule): boolean {
  return (s.evalEvery > 0 && step % s.evalEvery === 0) || step === s.stopAt;
}

/** Every `checkpointEvery` steps and at the last one, whose checkpoint adapter/ is published from. */
export function checkpointDue(step: number, s: Pick<Schedule, 'stopAt' | 'checkpointEvery'>): boolean {
  return (s.checkpointEvery > 0 && step % s.checkpointEvery === 0) || step === s.stopAt;
}

export type ResumePoint = { dir: string; ck: ReturnType<typeof readCheckpoint> };

/**
 * The latest checkpoint of `output`, checked against `cfg`'s hash (the one resume rule); null when
 * the run starts at step 0 instead: `output` holds this same run (its config.yaml hashes as `cfg`)
 * but no complete checkpoint (it died before its first), or, with `firstStart` (`coordinator
 * --resume`, which a Kubernetes Job runs on every start), no run at all yet. That run's files are
 * then cleared, as --overwrite clears them. Anything else is refused, naming why, and so is a
 * checkpoint whose model or data files changed since the run started (inputs.ts).
 */
function resumePoint(output: string, cfg: RunConfig, o: { firstStart?: boolean } = {}): ResumePoint | null {
  const dir = latestCheckpoint(output);
  if (dir) {
    const ck = readCheckpoint(dir, configHash(cfg));
    verifyInputs(output, cfg);
    return { dir, ck };
  }
  const recorded = path.join(output, 'config.yaml');
  const none = `${checkpointsDir(output)}: no checkpoint to resume from`;
  if (fs.existsSync(recorded)) {
    const theirs = configHash(loadConfig(recorded));
    const ours = configHash(cfg);
    if (theirs !== ours) {
      throw new RunError(`${none}, and ${recorded} is another run's config (hash ${theirs.slice(0, 12)}…, this one ${ours.slice(0, 12)}…): start this run with --output NEW_DIR`);
    }
    childLog('train').warn({ output }, `${output}: the run stopped before its first checkpoint; starting it again from step 0`);
  } else if (o.firstStart) {
    childLog('train').info({ output }, `${output}: no run there yet; starting one`);
  } else {
    throw new RunError(`${none} (${output} holds no run)`);
  }
  claimOutput(output, { overwrite: true });
  return null;
}

/**
 * The run directory as train, launch and coordinator start: writable (checked first), claimed for a
 * fresh run or opened at its resume point (null: step 0), stale checkpoint temporaries removed.
 * `flag` names the directory in errors (--output, --resume).
 */
export function openOutput(output: string, cfg: RunConfig, o: { resume?: boolean; overwrite?: boolean; resumeHint?: string; firstStart?: boolean; flag: string }): ResumePoint | null {
  if (o.resume && o.overwrite) throw new UserError('--overwrite starts a new run, --resume continues one: give one of them');
  checkWritable(output, o.flag);
  if (!o.resume) claimOutput(output, { overwrite: o.overwrite, resumeHint: o.resumeHint });
  fs.mkdirSync(output, { recursive: true });
  removeStaleTemps(output);
  return o.resume ? resumePoint(output, cfg, { firstStart: o.firstStart }) : null;
}

/**
 * Where a resume from checkpoint step `at` stops, or, when there is nothing left to train, the
 * run's own summary.json (its results stay as they are). --max-steps past the schedule's end is
 * refused: it only says where to stop, and a longer schedule changes the learning rate of the
 * steps already taken (and the config hash), so it is a new run.
 */
export function resumePlan(output: string, o: { at: number; total: number; maxSteps?: number; configMax?: number }): { stopAt: number; done: TrainSummary | null } {
  const { at, total, maxSteps } = o;
  if (maxSteps !== undefined && maxSteps > total) {
    throw new UserError(
      `--max-steps ${maxSteps} is past the end of the schedule of ${output} (${total} steps, from schedule.total_steps or schedule.epochs in its config.yaml): ` +
        `--max-steps only says where to stop and never extends the schedule. To train longer, start a new run with a longer schedule: ` +
        `--config ${path.join(output, 'config.yaml')} --set schedule.total_steps=${maxSteps} --output NEW_DIR`,
    );
  }
  const stopAt = Math.min(maxSteps ?? o.configMax ?? total, total);
  if (at < stopAt) return { stopAt, done: null };
  const file = path.join(output, 'summary.json');
  if (at > stopAt || !fs.existsSync(file)) {
    throw new UserError(`${output}: its checkpoint is at step ${at}, so there is nothing to train up to step ${stopAt}${maxSteps !== undefined ? ' (--max-steps)' : ''}; give a --max-steps above ${at} (at most ${total}, the schedule's end)`);
  }
  childLog('train').warn(
    { step: at, total_steps: total },
    at >= total
      ? `${output}: the run is finished (step ${at} of ${total}); nothing to train, and its summary.json, adapter/ and metrics.jsonl are left as they are`
      : `${output}: already at step ${at} (--max-steps ${stopAt}); nothing to train, its results are left as they are (a larger --max-steps, at most ${total}, continues it)`,
  );
  return { stopAt, done: JSON.parse(fs.readFileSync(file, 'utf8')) as TrainSummary };
}

/** A fresh run records its config and its inputs' hashes (inputs.ts) beside its outputs; a resume keeps the ones it started with. */
export function recordConfig(output: string, cfg: RunConfig): void {
  writeFileAtomic(path.join(output, 'config.yaml'), toYaml(cfg));
  recordInputs(output, cfg);
}

/** Seconds per phase of one rank's step (the StepTiming of src/comm/proto.ts). */
export interface PhaseTimes {
  data_wait_s: number;
  compute_s: number;
  allreduce_s: number;
  optimizer_s: number;
}

/** A step's metrics.jsonl line: per phase the slowest rank's time, and the straggler. */
export interface StepLine extends StepMetrics, PhaseTimes {
  workers: number;
  straggler: { rank: number; busy_s: number };
}

export interface StepLineInput {
  step: number;
  loss: number;
  lr: number;
  gradNorm?: number;
  /** Normalisation units of the global batch (label tokens) and its samples. */
  units: number;
  samples: number;
  causalLm: boolean;
  stepSeconds: number;
  wallSeconds: number;
  /** One entry per rank (one for a single process). */
  ranks: readonly { rank: number; peakBytes: number; timing: PhaseTimes | null }[];
}

/** The one builder of a step's line; the straggler is the rank with the most data wait + compute. */
export function stepLine(o: StepLineInput): StepLine {
  const slowest = (k: keyof PhaseTimes) => Math.max(...o.ranks.map((r) => r.timing?.[k] ?? 0));
  const busy = (r: StepLineInput['ranks'][number]) => (r.timing?.data_wait_s ?? 0) + (r.timing?.compute_s ?? 0);
  const straggler = o.ranks.reduce((a, r) => (busy(r) > busy(a) ? r : a));
  return {
    step: o.step, loss: o.loss, lr: o.lr,
    ...(o.causalLm ? { tokens_per_s: o.units / o.stepSeconds } : { samples_per_s: o.samples / o.stepSeconds }),
    peak_bytes: Math.max(...o.ranks.map((r) => r.peakBytes)), wall_s: o.wallSeconds, grad_norm: o.gradNorm,
    data_wait_s: slowest('data_wait_s'), compute_s: slowest('compute_s'), allreduce_s: slowest('allreduce_s'), optimizer_s: slowest('optimizer_s'),
    workers: o.ranks.length,
    straggler: { rank: straggler.rank, busy_s: busy(straggler) },
  };
}

/** metrics.jsonl (and its TensorBoard twin), the progress display, the best evaluation, and at the end summary.json. */
export class RunRecord {
  private metrics: MetricsLog;
  /** RUN_DIR/tensorboard/: every metrics line also as TensorBoard scalars (off with --no-tensorboard). */
  private readonly tensorboard: TensorBoardWriter | null;
  /** The last step metrics.jsonl holds. */
  private logged: number;
  private readonly progress: Progress;
  peak = 0;
  lastLoss = NaN;
  evalBefore: Record<string, number> | null = null;
  evalAfter: Record<string, number> | null = null;
  private readonly answers: { before?: readonly TaskExample[]; after?: readonly TaskExample[] } = {};
  private fid: SampleFidRecord | undefined;

  constructor(
    readonly output: string,
    private readonly schedule: Schedule,
    start: number,
    private readonly opts: { metric: string; best: Best; quiet?: boolean; t0?: number; tensorboard?: boolean },
  ) {
    // A resume (or a group restored from disk) trains again the steps after its checkpoint.
    if (start > 0) this.evalBefore = trimMetrics(output, start);
    this.logged = start;
    this.metrics = new MetricsLog(output);
    this.tensorboard = opts.tensorboard === false ? null : new TensorBoardWriter(output);
    if (start > 0) this.tensorboard?.restart(start + 1);
    this.progress = new Progress(start, schedule.stopAt, opts.quiet);
    this.t0 = opts.t0 ?? performance.now();
    this.best = opts.best;
  }

  readonly t0: number;
  /** Kept as the trainer always has: lower is better for a loss, higher for anything else. */
  best: Best;

  wallSeconds(): number {
    return (performance.now() - this.t0) / 1000;
  }

  /** Shows an evaluation's progress, `done` of `total` batches (setup.ts evaluate's onBatch). */
  readonly evaluating = (done: number, total: number): void => this.progress.evaluating(done, total);

  /** The evaluation before training, recorded at step `step` (the step before the first). */
  before(step: number, ev: Record<string, number>): void {
    // A group restored to the start trains (and evaluates) from the beginning again.
    if (this.evalBefore || this.logged > step) this.reopen(step - 1);
    this.evalBefore = ev;
    this.write({ step, eval: ev });
  }

  /** A finished step's line, then its evaluation's (when it evaluated). */
  stepped(m: StepMetrics, ev: Record<string, number> | null): void {
    if (m.step <= this.logged) this.reopen(m.step - 1);
    this.logged = m.step;
    this.write(m);
    this.progress.update(m);
    this.peak = Math.max(this.peak, m.peak_bytes);
    this.lastLoss = m.loss;
    if (!ev) return;
    this.write({ step: m.step, eval: ev });
    this.best = updateBest(this.best, m.step, this.opts.metric, ev);
    if (m.step === this.schedule.stopAt) this.evalAfter = ev;
  }

  private write(line: Record<string, unknown> & { step: number }): void {
    this.metrics.write(line);
    this.tensorboard?.line(line);
  }

  /** metrics.jsonl cut back to step `step`: the steps after it are trained again (a group restored from disk). */
  private reopen(step: number): void {
    this.metrics.close();
    trimMetrics(this.output, step);
    this.metrics = new MetricsLog(this.output);
    this.tensorboard?.restart(step + 1);
  }

  /** Held-out examples answered before the first step of a fresh run, and after its last. */
  answered(when: 'before' | 'after', examples: readonly TaskExample[]): void {
    this.answers[when] = examples;
  }

  /** A sample FID measured before the first step or after the last (src/train/tasks/diffusion-fid.ts). */
  sampled(when: 'before' | 'after', what: Omit<SampleFidRecord, 'before' | 'after'>, r: { fid: number; grid: string }): void {
    this.fid = { before: null, after: null, ...this.fid, ...what, [when]: r.fid, [`grid_${when}`]: r.grid };
  }

  close(): void {
    this.progress.stop();
    this.metrics.close();
    this.tensorboard?.close();
  }

  /** Writes summary.json from what was recorded and what the caller knows of the run. */
  summary(s: { cfg: RunConfig; steps: number; totalSteps: number; trainable: number; head: number; backend: string }): TrainSummary {
    const { before, after } = this.answers;
    const summary: TrainSummary = {
      task: s.cfg.task, steps: s.steps, total_steps: s.totalSteps, method: s.cfg.method, trainable: s.trainable, head: s.head, backend: s.backend,
      wall_s: this.wallSeconds(), peak_bytes: this.peak, final_loss: this.lastLoss,
      eval_before: this.evalBefore, eval_after: this.evalAfter, best: this.best, output: path.resolve(this.output),
      ...(this.fid ? { fid: this.fid } : {}),
      ...(before && after ? { examples: before.map((b, i) => ({ question: b.question, before: b.answer, after: after[i]?.answer ?? '', expected: b.expected })) } : {}),
    };
    writeFileAtomic(path.join(this.output, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
    return summary;
  }
}

/** adapter/ of the run = the adapter of its final checkpoint (the last step is always checkpointed). */
export function publishAdapter(output: string, checkpointDir: string): void {
  const adapterDir = path.join(output, 'adapter');
  const tmp = `${adapterDir}.tmp-${process.pid}`;
  writingTo(adapterDir, () => {
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.cpSync(path.join(checkpointDir, 'adapter'), tmp, { recursive: true });
    fs.rmSync(adapterDir, { recursive: true, force: true });
    fs.renameSync(tmp, adapterDir);
  });
}

/** What follows a step's update, in this order, on a single process and on every rank of a group. */
export interface StepTail {
  evaluate(): Promise<Record<string, number> | null>;
  /** The step is recorded (a metrics line, or the report to the coordinator) with its evaluation. */
  record(ev: Record<string, number> | null): void | Promise<void>;
  checkpoint(): void | Promise<void>;
}

/** Ends step `step`: evaluate when due, record, checkpoint when due (a group's coordinator decides that). */
export async function finishStep(step: number, s: Schedule, tail: StepTail, checkpoint = checkpointDue(step, s)): Promise<void> {
  const ev = evaluatesAt(step, s) ? await tail.evaluate() : null;
  await tail.record(ev);
  if (checkpoint) await tail.checkpoint();
}

export interface LoopHooks {
  /** Trains optimizer step `step` (1-based); its metrics line. */
  train(step: number): Promise<StepMetrics>;
  evaluate(): Promise<Record<string, number> | null>;
  /** Writes checkpoints/step-N with the best evaluation so far; returns its directory. */
  checkpoint(step: number, best: Best): Promise<string>;
}

/** How runLoop ended: at `stopAt`, or interrupted at a step boundary. `checkpoint`: the last one it wrote. */
export interface LoopEnd {
  checkpoint: string | null;
  /** The step it stopped after when `stop` fired before stopAt (its checkpoint is written). */
  interruptedAt?: number;
}

/** The error of a run interrupted after `step` (0: before any step finished) of `stopAt`; exit 130. */
export function interruptedAt(step: number, stopAt: number, checkpoint: string | null): InterruptedError {
  return new InterruptedError(step > 0 ? `interrupted: stopped after step ${step} of ${stopAt}` : 'interrupted before the first step finished: nothing was trained', step, checkpoint);
}

/** Lets signal handlers run: a step is synchronous tensor work, and microtasks never yield to them. */
const yieldToEvents = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Steps `from + 1 … stopAt` of a single process, recorded in `record`. When `stop` is aborted
 * (Ctrl-C) the loop ends at the next step boundary and checkpoints that step when it is not yet
 * (the trainable state is tiny), so the run resumes from exactly where it stopped.
 */
export async function runLoop(from: number, s: Schedule, record: RunRecord, hooks: LoopHooks, stop?: AbortSignal): Promise<LoopEnd> {
  let last: string | null = null;
  for (let step = from + 1; step <= s.stopAt; step++) {
    await yieldToEvents();
    if (stop?.aborted) return { checkpoint: last, interruptedAt: step - 1 };
    const m = await hooks.train(step);
    let saved = false;
    await finishStep(step, s, {
      evaluate: () => hooks.evaluate(),
      record: (ev) => record.stepped(m, ev),
      checkpoint: async () => {
        last = await hooks.checkpoint(step, record.best);
        saved = true;
      },
    });
    await yieldToEvents();
    if (stop?.aborted && step < s.stopAt) return { checkpoint: saved ? last : await hooks.checkpoint(step, record.best), interruptedAt: step };
  }
  return { checkpoint: last };
}

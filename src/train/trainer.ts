// The single-process training loop (`onelora train`): seeded data order over one global sample
// counter, gradient accumulation whose result equals one big batch, evaluation, atomic
// checkpoints, exact resume, and the run outputs (docs/architecture.md#run-outputs). The loop, its rules and its
// outputs are src/train/loop.ts's, shared with the distributed group; this file gives it hooks.
import path from 'node:path';
import { tf } from '../backend/tf.js';
import { latestCheckpoint } from '../checkpoint/checkpoint.js';
import type { RunConfig } from '../config/index.js';
import { deriveAccumulation } from './batch.js';
import type { Dataset } from '../data/arrow-file.js';
import { dealStep } from '../data/deal.js';
import { stepsPerEpoch } from '../data/sampler.js';
import { RunError } from '../errors.js';
import { childLog } from '../log.js';
import type { MicroBatch } from './engine.js';
import type { Best, StepMetrics } from './metrics.js';
import { evaluatesBefore, interruptedAt, publishAdapter, recordConfig, resumePlan, openOutput, RunRecord, runLoop, scheduleOf, stepLine, type LoopEnd, type ResumePoint, type TrainSummary } from './loop.js';
import { SampleFid } from './tasks/diffusion-fid.js';
import type { DitModel } from '../models/dit.js';
import { answerExamples, checkpoint, evaluate, openDataset, runParams, setupRun, totalSteps, type RunSetup } from './setup.js';
import { drawRunCurves } from '../watch/plot.js';

export type { TrainSummary } from './loop.js';

const log = childLog('train');

export interface TrainOptions {
  readonly output: string;
  readonly resume?: boolean;
  /** A fresh run into a directory that holds one deletes that run's files first (else it is refused). */
  readonly overwrite?: boolean;
  /** Aborted (Ctrl-C): stop at the next step boundary with a checkpoint of that step; throws InterruptedError. */
  readonly signal?: AbortSignal;
  /** Absolute step to stop at (only where to stop; docs/architecture.md#contracts). */
  readonly maxSteps?: number;
  readonly backend?: string;
  /** No progress bar or periodic lines (tests). */
  readonly quiet?: boolean;
  /** false: no TensorBoard event files (--no-tensorboard). */
  readonly tensorboard?: boolean;
}

/** The micro-batches of global batch `samplesSeen` for one replica (rank of `workers`). */
export function replicaBatches(train: Dataset, cfg: RunConfig, samplesSeen: number, workers = 1, rank = 0): MicroBatch[] {
  deriveAccumulation(cfg, workers);
  const live = Array.from({ length: workers }, (_, r) => r);
  return dealStep(train, cfg, samplesSeen, live)
    .filter((d) => d.rank === rank)
    .sort((a, b) => a.accumIndex - b.accumIndex)
    .map((d) => ({ rows: d.rows, ctx: { seed: cfg.seed, epoch: d.samples[0]?.epoch ?? 0, sampleIds: d.samples.map((s) => s.index), training: true } }));
}

/** The checkpoint a resume starts from, and the step it stops at (resumePlan). */
type Resumed = ResumePoint & { stopAt: number };

/** Trains as the config says; returns the summary also written to summary.json. */
export async function train(cfg: RunConfig, opts: TrainOptions): Promise<TrainSummary> {
  const point = openOutput(opts.output, cfg, { resume: opts.resume, overwrite: opts.overwrite, flag: opts.resume ? '--resume' : '--output' });
  const output = path.resolve(opts.output);
  let resumed: Resumed | null = null;
  if (point) {
    // The schedule's length needs only the row count: a run with nothing left to train loads nothing.
    const rows = openDataset(cfg, 'data.train');
    const total = totalSteps(cfg, rows.numRows);
    rows.close();
    const { stopAt, done } = resumePlan(opts.output, { at: point.ck.state.step, total, maxSteps: opts.maxSteps, configMax: cfg.max_steps });
    if (done) return done;
    resumed = { ...point, stopAt };
  }
  const run = await setupRun(cfg, { backend: opts.backend });
  try {
    return await trainLoop(run, output, opts, resumed);
  } finally {
    run.close();
  }
}

async function trainLoop(run: RunSetup, output: string, opts: TrainOptions, resumed: Resumed | null): Promise<TrainSummary> {
  const { cfg, engine, train: data } = run;
  const total = totalSteps(cfg, data.numRows);
  stepsPerEpoch(data.numRows, cfg.batch.global);
  const schedule = scheduleOf(cfg, resumed?.stopAt ?? Math.min(opts.maxSteps ?? cfg.max_steps ?? total, total));
  const stopAt = schedule.stopAt;
  let step = 0;
  let samplesSeen = 0;
  let best: Best = null;
  let resumedFrom: string | null = null;
  if (resumed) {
    const { dir, ck } = resumed;
    engine.restoreByKey(ck.trainable, ck.m, ck.v, ck.state.optimizer_t, dir);
    step = ck.state.step;
    samplesSeen = ck.state.samples_seen;
    best = ck.state.best ?? null;
    resumedFrom = dir;
    log.info({ step, samples_seen: samplesSeen, checkpoint: dir }, `resumed at step ${step}`);
  } else {
    recordConfig(output, cfg);
  }
  const { trainable, head } = runParams(run);
  log.info({ method: cfg.method, trainable, head, targets: run.peft.targets.length, total_steps: total, stop_at: stopAt }, 'training');

  const record = new RunRecord(output, schedule, step, { metric: cfg.eval.metric, best, quiet: opts.quiet, tensorboard: opts.tensorboard });
  const d = cfg.diffusion;
  const sampleFid = cfg.task === 'diffusion' && d.vae !== undefined ? SampleFid.open({ ...d, vae: d.vae }, run.validation, cfg.seed) : null;
  const measure = async (when: 'before' | 'after'): Promise<void> => {
    if (!sampleFid) return;
    const r = await sampleFid.measure(run.model as DitModel, path.join(output, 'samples', when));
    record.sampled(when, sampleFid.describe(), { fid: r.fid, grid: path.relative(output, r.grid) });
    log.info({ fid: r.fid, grid: r.grid }, `sample FID ${when} training`);
  };
  const first = step + 1;
  let end: LoopEnd = { checkpoint: null };
  let fresh = false;
  try {
    if (evaluatesBefore(first)) {
      const ev = await evaluate(run, record.evaluating);
      if (ev) record.before(step, ev);
      const before = await answerExamples(run);
      if (before) record.answered('before', before);
      await measure('before');
      fresh = true;
    }
    end = await runLoop(step, schedule, record, {
      evaluate: () => evaluate(run, record.evaluating),
      checkpoint: (s, b) => checkpoint(run, output, { step: s, samplesSeen, best: b }),
      train: async (s): Promise<StepMetrics> => {
        const t0 = performance.now();
        const micro = replicaBatches(data, cfg, samplesSeen);
        const units = micro.reduce((n, mb) => n + run.task.countUnits(mb.rows), 0);
        const t1 = performance.now();
        const { grad, lossSum, peakBytes } = await engine.computeGrads(micro, Math.max(1, units));
        const t2 = performance.now();
        const loss = lossSum / Math.max(1, units);
        if (!Number.isFinite(loss)) {
          throw new RunError(`step ${s}: the loss is ${loss}; stopping without writing a checkpoint (the last good one is ${latestCheckpoint(output) ?? 'none'})`);
        }
        const { lr, gradNorm } = engine.applyUpdate(grad, s - 1);
        const t3 = performance.now();
        step = s;
        samplesSeen += cfg.batch.global;
        const timing = { data_wait_s: (t1 - t0) / 1000, compute_s: (t2 - t1) / 1000, allreduce_s: 0, optimizer_s: (t3 - t2) / 1000 };
        return stepLine({
          step: s, loss, lr, gradNorm, units, samples: cfg.batch.global, causalLm: cfg.task === 'causal-lm',
          stepSeconds: (t3 - t0) / 1000, wallSeconds: record.wallSeconds(), ranks: [{ rank: 0, peakBytes, timing }],
        });
      },
    }, opts.signal);
    if (end.interruptedAt === undefined && step === stopAt) await measure('after');
  } finally {
    record.close();
    sampleFid?.dispose();
  }
  if (end.interruptedAt !== undefined) {
    const at = end.interruptedAt;
    throw interruptedAt(at, stopAt, end.checkpoint ?? resumedFrom);
  }
  if (step === stopAt && stopAt > 0) {
    const from = end.checkpoint ?? resumedFrom;
    if (!from) throw new RunError(`${output}: the last step has no checkpoint to publish adapter/ from`);
    publishAdapter(output, from);
  }
  const after = fresh ? await answerExamples(run) : null;
  if (after) record.answered('after', after);
  const summary = record.summary({ cfg, steps: step, totalSteps: total, trainable, head, backend: run.backend.name });
  await drawRunCurves(output);
  log.info({ steps: step, final_loss: summary.final_loss, wall_s: Number(summary.wall_s.toFixed(1)), tensors: tf.memory().numTensors }, 'done');
  return summary;
}

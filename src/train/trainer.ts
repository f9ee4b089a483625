// The single-process training loop (`onelora train`): seeded data order over one global sample
// counter, gradient accumulation whose result equals one big batch, evaluation, atomic
// checkpoints, exact resume, and the run outputs (docs/architecture.md#run-outputs).
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../backend/tf.js';
import { checkpointsDir, latestCheckpoint, readCheckpoint, writeCheckpoint, writeFileAtomic } from '../checkpoint/checkpoint.js';
import { configHash, toYaml, type RunConfig } from '../config/index.js';
import { deriveAccumulation } from './batch.js';
import type { Dataset } from '../data/arrow-file.js';
import { dealStep } from '../data/deal.js';
import { sampleAt, stepsPerEpoch } from '../data/sampler.js';
import { RunError } from '../errors.js';
import { childLog } from '../log.js';
import { saveAdapter } from '../peft/adapter-io.js';
import type { MicroBatch } from './engine.js';
import { CausalLmTask, type CausalLmModel } from './tasks/causal-lm.js';
import { MetricsLog, Progress, evaluatesAt, updateBest, type Best, type StepMetrics } from './metrics.js';
import { setupRun, totalSteps, type RunSetup } from './setup.js';

const log = childLog('train');

export interface TrainOptions {
  readonly output: string;
  readonly resume?: boolean;
  /** Absolute step to stop at (only where to stop; docs/architecture.md#contracts). */
  readonly maxSteps?: number;
  readonly backend?: string;
  /** No progress bar or periodic lines (tests). */
  readonly quiet?: boolean;
}

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
  /** Causal LM with a tokenizer: held-out questions answered before and after training. */
  examples?: { question: string; before: string; after: string; expected: string }[];
  output: string;
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

/** Validation micro-batches in file order, at most eval.max_batches of them (0: all). */
export function* validationBatches(validation: Dataset, cfg: RunConfig): Generator<MicroBatch> {
  const micro = cfg.batch.micro;
  const limit = cfg.eval.max_batches > 0 ? Math.min(validation.numRows, cfg.eval.max_batches * micro) : validation.numRows;
  for (let start = 0; start < limit; start += micro) {
    const ids = Array.from({ length: Math.min(micro, limit - start) }, (_, i) => start + i);
    yield { rows: validation.rows(ids), ctx: { seed: cfg.seed, epoch: 0, sampleIds: ids, training: false } };
  }
}

export async function evaluate(run: RunSetup): Promise<Record<string, number> | null> {
  if (!run.validation) return null;
  return run.task.evaluate(run.model, validationBatches(run.validation, run.cfg));
}

/**
 * Writes checkpoints/step-N for `run`'s state (shared with the distributed worker's rank 0, which
 * passes its world size). `afterAdapter` runs mid-write, once the adapter is in the temporary
 * directory: the fault-injection point of the kill-during-checkpoint test.
 */
export function checkpoint(run: RunSetup, output: string, state: { step: number; samplesSeen: number; best: TrainSummary['best'] }, worldSize = 1, afterAdapter?: () => void): void {
  const { engine, cfg } = run;
  const f = engine.fused;
  const shapeOf = (key: string) => f.slots.find((s) => s.key === key)?.variable.shape ?? [];
  const as = (buf: Float32Array) => Object.fromEntries(f.slots.map((s) => [s.key, { dtype: 'F32' as const, shape: shapeOf(s.key), data: buf.slice(s.offset, s.offset + s.size) }]));
  const epoch = sampleAt(state.samplesSeen, { epochSize: run.train.numRows, globalBatch: cfg.batch.global, seed: cfg.seed }).epoch;
  writeCheckpoint(
    output,
    {
      state: { step: state.step, epoch, samples_seen: state.samplesSeen, rng: { seed: cfg.seed }, config_hash: configHash(cfg), world_size: worldSize, best: state.best, optimizer_t: engine.optimizer.t },
      trainable: as(f.values),
      optimizer: { m: as(engine.optimizer.m), v: as(engine.optimizer.v) },
      writeAdapter: (dir) => {
        saveAdapter(dir, run.peft, { baseModel: run.modelRef, taskType: cfg.task });
        afterAdapter?.();
      },
    },
    cfg.checkpoint.keep,
  );
}

/** Trains as the config says; returns the summary also written to summary.json. */
export async function train(cfg: RunConfig, opts: TrainOptions): Promise<TrainSummary> {
  const output = path.resolve(opts.output);
  fs.mkdirSync(output, { recursive: true });
  const run = await setupRun(cfg, { backend: opts.backend });
  try {
    return await trainLoop(run, output, opts);
  } finally {
    run.close();
  }
}

async function trainLoop(run: RunSetup, output: string, opts: TrainOptions): Promise<TrainSummary> {
  const { cfg, engine, train: data } = run;
  const total = totalSteps(cfg, data.numRows);
  stepsPerEpoch(data.numRows, cfg.batch.global);
  const stopAt = Math.min(opts.maxSteps ?? cfg.max_steps ?? total, total);
  let step = 0;
  let samplesSeen = 0;
  let best: TrainSummary['best'] = null;
  if (opts.resume) {
    const dir = latestCheckpoint(output);
    if (!dir) throw new RunError(`${checkpointsDir(output)}: no checkpoint to resume from`);
    const ck = readCheckpoint(dir, configHash(cfg));
    engine.restoreByKey(ck.trainable, ck.m, ck.v, ck.state.optimizer_t, dir);
    step = ck.state.step;
    samplesSeen = ck.state.samples_seen;
    best = ck.state.best ?? null;
    log.info({ step, samples_seen: samplesSeen, checkpoint: dir }, `resumed at step ${step}`);
  } else {
    writeFileAtomic(path.join(output, 'config.yaml'), toYaml(cfg));
  }
  const trainable = engine.fused.size;
  const head = run.created.reduce((n, p) => n + (run.model.parameters().get(p)?.size ?? 0), 0);
  log.info({ method: cfg.method, trainable, head, targets: run.peft.targets.length, total_steps: total, stop_at: stopAt }, 'training');

  const metrics = new MetricsLog(output);
  const t0 = performance.now();
  let peak = 0;
  let lastLoss = NaN;
  const evalBefore = step === 0 && cfg.eval.every >= 0 ? await evaluate(run) : null;
  const exampleRows = run.validation && run.task instanceof CausalLmTask && run.tokenizer ? run.validation.rows([0, 1].filter((i) => i < (run.validation as Dataset).numRows)) : null;
  const before = exampleRows && step === 0 ? (run.task as CausalLmTask).examples(run.model as unknown as CausalLmModel, exampleRows) : null;
  if (evalBefore) metrics.write({ step, eval: evalBefore });
  const progress = new Progress(step, stopAt, opts.quiet);
  let evalAfter: Record<string, number> | null = null;
  try {
    while (step < stopAt) {
      const stepStart = performance.now();
      const micro = replicaBatches(data, cfg, samplesSeen);
      const units = micro.reduce((n, mb) => n + run.task.countUnits(mb.rows), 0);
      const { grad, lossSum, peakBytes } = await engine.computeGrads(micro, Math.max(1, units));
      const loss = lossSum / Math.max(1, units);
      if (!Number.isFinite(loss)) {
        throw new RunError(`step ${step + 1}: the loss is ${loss}; stopping without writing a checkpoint (the last good one is ${latestCheckpoint(output) ?? 'none'})`);
      }
      const { lr, gradNorm } = engine.applyUpdate(grad, step);
      step += 1;
      samplesSeen += cfg.batch.global;
      peak = Math.max(peak, peakBytes);
      lastLoss = loss;
      const dt = (performance.now() - stepStart) / 1000;
      const m: StepMetrics = {
        step, loss, lr,
        ...(cfg.task === 'causal-lm' ? { tokens_per_s: units / dt } : { samples_per_s: cfg.batch.global / dt }),
        peak_bytes: peakBytes, wall_s: (performance.now() - t0) / 1000, grad_norm: gradNorm,
      };
      metrics.write(m);
      progress.update(m);
      const last = step === stopAt;
      if (evaluatesAt(step, cfg.eval.every, stopAt)) {
        const ev = await evaluate(run);
        if (ev) {
          metrics.write({ step, eval: ev });
          best = updateBest(best, step, cfg.eval.metric, ev);
          if (last) evalAfter = ev;
        }
      }
      if ((cfg.checkpoint.every > 0 && step % cfg.checkpoint.every === 0) || last) checkpoint(run, output, { step, samplesSeen, best });
    }
  } finally {
    progress.stop();
    metrics.close();
  }
  if (step === stopAt && stopAt > 0) {
    const adapterDir = path.join(output, 'adapter');
    const tmp = `${adapterDir}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    saveAdapter(tmp, run.peft, { baseModel: run.modelRef, taskType: cfg.task });
    fs.rmSync(adapterDir, { recursive: true, force: true });
    fs.renameSync(tmp, adapterDir);
  }
  const after = exampleRows && before ? (run.task as CausalLmTask).examples(run.model as unknown as CausalLmModel, exampleRows) : null;
  const summary: TrainSummary = {
    task: cfg.task, steps: step, total_steps: total, method: cfg.method, trainable, head, backend: run.backend.name,
    wall_s: (performance.now() - t0) / 1000, peak_bytes: peak, final_loss: lastLoss,
    eval_before: evalBefore, eval_after: evalAfter, best, output,
    ...(before && after ? { examples: before.map((b, i) => ({ question: b.question, before: b.answer, after: after[i]?.answer ?? '', expected: b.expected })) } : {}),
  };
  writeFileAtomic(path.join(output, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  log.info({ steps: step, final_loss: lastLoss, wall_s: Number(summary.wall_s.toFixed(1)), tensors: tf.memory().numTensors }, 'done');
  return summary;
}

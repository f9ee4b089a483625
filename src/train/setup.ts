// Builds everything a run needs from its config: backend, model, method, datasets, task, engine,
// and what both loops do with it (evaluate, checkpoint). Shared by `onelora train` and the
// distributed worker, so both train, evaluate and checkpoint exactly the same thing.
import fs from 'node:fs';
import { initBackend, type BackendInfo } from '../backend/select.js';
import { clearTransposeCache } from '../backend/linear.js';
import { writeCheckpoint } from '../checkpoint/checkpoint.js';
import { configHash, describePath, type RunConfig } from '../config/index.js';
import { Dataset } from '../data/arrow-file.js';
import { readLmMeta } from '../data/lm-meta.js';
import { sampleAt } from '../data/sampler.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { NothingToTrainError, UserError } from '../errors.js';
import { childLog } from '../log.js';
import type { AdaptableModel } from '../nn/modules.js';
import { describeModel, loadModel } from '../models/registry.js';
import { adapterTensors, writeAdapterDir } from '../peft/adapter-io.js';
import { applyMethod, type PeftState } from '../peft/apply.js';
import { paramCount, type ParamCount } from '../peft/count.js';
import { methodWithRank } from './method.js';
import { TrainEngine, type MicroBatch } from './engine.js';
import type { Best } from './metrics.js';
import type { Task, TaskExample } from './task.js';
import { createTask } from './tasks/index.js';
import { checkTokenData, tokenizerFor } from './token-check.js';

const log = childLog('train');

export interface RunSetup {
  readonly cfg: RunConfig;
  readonly backend: BackendInfo;
  readonly model: AdaptableModel;
  readonly peft: PeftState;
  readonly task: Task;
  readonly tokenizer: Tokenizer | null;
  readonly train: Dataset;
  readonly validation: Dataset | null;
  readonly engine: TrainEngine;
  /** Model reference as the config gave it (preset name or directory), for adapter_config.json. */
  readonly modelRef: string;
  /** Parameters created for this task (a new classification head), reported apart from `trainable`. */
  readonly created: readonly string[];
  close(): void;
}

export function openDataset(cfg: RunConfig, key: 'data.train' | 'data.validation'): Dataset {
  const file = key === 'data.train' ? cfg.data.train : (cfg.data.validation as string);
  if (!fs.existsSync(file)) throw new UserError(`${describePath(cfg, key)} does not exist (prepare it with 'onelora data prepare')`);
  return Dataset.open(file);
}

export async function setupRun(cfg: RunConfig, opts: { backend?: string } = {}): Promise<RunSetup> {
  const backend = await initBackend(opts.backend ?? cfg.backend);
  if (cfg.model.path && !fs.existsSync(cfg.model.path)) throw new UserError(`${describePath(cfg, 'model.path')} does not exist`);
  const train = openDataset(cfg, 'data.train');
  const validation = cfg.data.validation ? openDataset(cfg, 'data.validation') : null;
  const tokenizer = cfg.task === 'causal-lm' ? tokenizerFor(cfg) : null;
  const modelRef = cfg.model.path ?? (cfg.model.preset as string);
  const numLabels = train.info.classes?.length;
  // From config.json alone, so a mismatch is refused before any weight is read.
  const vocabSize = (await describeModel(modelRef, { numLabels })).vocabSize;
  if (vocabSize !== undefined) {
    try {
      for (const [ds, key] of [[train, 'data.train'], [validation, 'data.validation']] as const) {
        if (ds) checkTokenData(ds, key, { ref: modelRef, vocabSize }, tokenizer);
      }
    } catch (err) {
      train.close();
      validation?.close();
      throw err;
    }
  }
  const labels = cfg.task === 'classification' && numLabels ? train.info.classes : undefined;
  const loaded = await loadModel(modelRef, { numLabels, labels, seed: cfg.seed });
  const model = loaded.model;
  if (loaded.created.length > 0) log.info({ created: loaded.created }, 'created for this task (trained, saved with the adapter)');
  // Created tensors that are not head linears (a DiT's class table for the dataset) train whole.
  const linearParams = new Set(model.linears().flatMap((l) => [`${l.path}.weight`, `${l.path}.bias`]));
  const headParams = loaded.created.filter((n) => !linearParams.has(n));
  const peft = applyMethod(model, methodWithRank(cfg.method, cfg.rank, { alpha: cfg.alpha, dropout: cfg.dropout }), { seed: cfg.seed, targets: cfg.targets, ...(headParams.length ? { headParams } : {}) });
  if (peft.trainable.size === 0) {
    peft.dispose();
    model.dispose();
    train.close();
    validation?.close();
    throw new NothingToTrainError(
      `method '${cfg.method}' finds nothing to train in ${modelRef}${cfg.targets ? ` with targets ${cfg.targets}` : ''}: ` +
        'no layer it adapts exists there (a DiT\'s LayerNorms, for one, have no scale or shift for `norms`)',
    );
  }
  const task = createTask(cfg, train, tokenizer);
  const o = cfg.optim;
  const engine = await TrainEngine.create(model, task, peft.trainable, {
    schedule: { name: cfg.schedule.name, baseLr: o.lr, warmupSteps: cfg.schedule.warmup_steps, totalSteps: totalSteps(cfg, train.numRows), minLrRatio: cfg.schedule.min_lr_ratio },
    betas: [o.betas[0], o.betas[1]],
    eps: o.eps,
    weightDecay: o.weight_decay,
    gradClip: o.grad_clip,
    // HF Trainer's rule: no decay on biases and normalisation weights.
    noDecay: (key) => /\.bias$/.test(key) || /norm/i.test(key),
  });
  return {
    cfg, backend, model, peft, task, tokenizer, train, validation, engine, modelRef, created: loaded.created,
    close() {
      train.close();
      validation?.close();
      peft.dispose();
      model.dispose();
      clearTransposeCache();
    },
  };
}

/** The schedule's length in optimizer steps: schedule.total_steps, else epochs × steps per epoch. */
export function totalSteps(cfg: RunConfig, trainRows: number): number {
  if (cfg.schedule.total_steps !== undefined) return cfg.schedule.total_steps;
  const perEpoch = Math.floor(trainRows / cfg.batch.global);
  if (perEpoch === 0) throw new UserError(`data.train has ${trainRows} rows, fewer than one global batch (batch.global = ${cfg.batch.global})`);
  return perEpoch * (cfg.schedule.epochs as number);
}

/** Validation micro-batches in file order, at most eval.max_batches of them (0: all). */
const validationRows = (validation: Dataset, cfg: RunConfig): number =>
  cfg.eval.max_batches > 0 ? Math.min(validation.numRows, cfg.eval.max_batches * cfg.batch.micro) : validation.numRows;

function* validationBatches(validation: Dataset, cfg: RunConfig): Generator<MicroBatch> {
  const micro = cfg.batch.micro;
  const limit = validationRows(validation, cfg);
  for (let start = 0; start < limit; start += micro) {
    const ids = Array.from({ length: Math.min(micro, limit - start) }, (_, i) => start + i);
    yield { rows: validation.rows(ids), ctx: { seed: cfg.seed, epoch: 0, sampleIds: ids, training: false } };
  }
}

/** The task's metrics on the validation split; null without one. `onBatch` hears of each batch done, of how many. */
export async function evaluate(run: RunSetup, onBatch?: (done: number, total: number) => void): Promise<Record<string, number> | null> {
  if (!run.validation) return null;
  const total = Math.ceil(validationRows(run.validation, run.cfg) / run.cfg.batch.micro);
  function* counted(): Generator<MicroBatch> {
    let done = 0;
    onBatch?.(0, total);
    // A batch is done once the task asks for the next one (or the generator ends).
    for (const b of validationBatches(run.validation as Dataset, run.cfg)) {
      yield b;
      onBatch?.(++done, total);
    }
  }
  return run.task.evaluate(run.model, counted());
}

/**
 * The first two validation rows answered by the model (causal LM with a tokenizer), shown before
 * and after training in the summary; null where the task cannot answer.
 */
export async function answerExamples(run: RunSetup): Promise<TaskExample[] | null> {
  const v = run.validation;
  if (!v || !run.task.examples) return null;
  return await run.task.examples(run.model, v.rows([0, 1].filter((i) => i < v.numRows)));
}

/** The run's parameter count: the adapter's trainable elements, and the new task head apart (src/peft/count.ts). */
export function runParams(run: RunSetup): ParamCount {
  return paramCount(run.peft);
}

/**
 * Writes checkpoints/step-N for `run`'s state and returns its directory (a group's rank 0 passes
 * its world size). `afterAdapter` runs mid-write, once the adapter is in the temporary directory:
 * the fault-injection point of the kill-during-checkpoint test.
 */
export async function checkpoint(run: RunSetup, output: string, state: { step: number; samplesSeen: number; best: Best }, worldSize = 1, afterAdapter?: () => void): Promise<string> {
  const { engine, cfg } = run;
  const f = engine.fused;
  const shapeOf = (key: string) => f.slots.find((s) => s.key === key)?.variable.shape ?? [];
  const as = (buf: Float32Array) => Object.fromEntries(f.slots.map((s) => [s.key, { dtype: 'F32' as const, shape: shapeOf(s.key), data: buf.slice(s.offset, s.offset + s.size) }]));
  const adapter = await adapterTensors(run.peft); // read before the synchronous write below
  const epoch = sampleAt(state.samplesSeen, { epochSize: run.train.numRows, globalBatch: cfg.batch.global, seed: cfg.seed }).epoch;
  return writeCheckpoint(
    output,
    {
      state: { step: state.step, epoch, samples_seen: state.samplesSeen, rng: { seed: cfg.seed }, config_hash: configHash(cfg), world_size: worldSize, best: state.best, optimizer_t: engine.optimizer.t },
      trainable: as(f.values),
      optimizer: { m: as(engine.optimizer.m), v: as(engine.optimizer.v) },
      writeAdapter: (dir) => {
        const template = run.train.info.kind === 'lm' ? readLmMeta(run.train).template : undefined;
        writeAdapterDir(dir, run.peft, adapter, { baseModel: run.modelRef, taskType: cfg.task, labels: cfg.task === 'classification' ? run.train.info.classes : undefined, ...(template !== undefined ? { promptTemplate: template } : {}) });
        afterAdapter?.();
      },
    },
    cfg.checkpoint.keep,
  );
}

// `--dry-run`: what a run would do, checked as far as this machine can see — the config, the
// model (its config.json, or a preset: no weights are loaded), the data files that exist here and
// the method's trainable count — without allocating a tensor. Files that are not here (weights on
// a cluster's volume, data not yet prepared) are listed, not fatal: the run itself checks them.
import fs from 'node:fs';
import path from 'node:path';
import { configHash, describePath, type RunConfig } from '../config/index.js';
import { deriveAccumulation } from './batch.js';
import { openSafetensorsDir } from '../checkpoint/safetensors-dir.js';
import { Dataset } from '../data/arrow-file.js';
import { UserError } from '../errors.js';
import { describeModel } from '../models/registry.js';
import { countTrainable } from '../peft/count.js';
import { methodWithRank } from './method.js';
import { checkTokenData, tokenizerFor } from './token-check.js';

export interface RunPlan {
  model: { ref: string; family: string | null; params: number | null; found: boolean };
  method: string;
  trainable: number | null;
  head: number | null;
  data: Record<string, { file: string; rows: number | null; found: boolean }>;
  workers: number;
  global_batch: number;
  micro_batch: number;
  accumulation: number;
  total_steps: number | null;
  stop_at: number | null;
  config_hash: string;
  output: string;
  missing: string[];
}

export async function planRun(cfg: RunConfig, output: string, workers = cfg.distributed.workers): Promise<RunPlan> {
  const accumulation = deriveAccumulation(cfg, workers);
  const missing: string[] = [];
  const data: RunPlan['data'] = {};
  let classes: number | undefined;
  for (const split of ['train', 'validation', 'test'] as const) {
    const file = cfg.data[split];
    if (!file) continue;
    if (!fs.existsSync(file)) {
      missing.push(describePath(cfg, `data.${split}`));
      data[split] = { file, rows: null, found: false };
      continue;
    }
    const ds = Dataset.open(file);
    data[split] = { file, rows: ds.numRows, found: true };
    if (split === 'train') classes = ds.info.classes?.length;
    ds.close();
  }
  const ref = cfg.model.path ?? (cfg.model.preset as string);
  const modelFound = !cfg.model.path || fs.existsSync(path.join(cfg.model.path, 'config.json'));
  let desc: Awaited<ReturnType<typeof describeModel>> | null = null;
  if (modelFound) desc = await describeModel(ref, { numLabels: classes });
  else missing.push(`${describePath(cfg, 'model.path')} (no config.json there)`);
  if (desc?.vocabSize !== undefined && cfg.task === 'causal-lm') {
    const tokenizer = tokenizerFor(cfg);
    for (const split of ['train', 'validation'] as const) {
      if (!data[split]?.found) continue;
      const ds = Dataset.open(data[split].file);
      try {
        checkTokenData(ds, `data.${split}`, { ref, vocabSize: desc.vocabSize }, tokenizer);
      } finally {
        ds.close();
      }
    }
  }
  const spec = methodWithRank(cfg.method, cfg.rank, { alpha: cfg.alpha, dropout: cfg.dropout });
  const count = desc ? countTrainable(desc, spec, { targets: cfg.targets }) : null;
  const trainRows = data.train?.rows ?? null;
  let total: number | null = cfg.schedule.total_steps ?? null;
  if (total === null && trainRows !== null) {
    const perEpoch = Math.floor(trainRows / cfg.batch.global);
    if (perEpoch === 0) throw new UserError(`data.train has ${trainRows} rows, fewer than one global batch (batch.global = ${cfg.batch.global})`);
    total = perEpoch * (cfg.schedule.epochs as number);
  }
  return {
    model: { ref, family: desc?.family ?? null, params: desc?.totalParams ?? null, found: modelFound },
    method: spec.text, trainable: count?.trainable ?? null, head: count?.head ?? null, data,
    workers, global_batch: cfg.batch.global, micro_batch: cfg.batch.micro, accumulation,
    total_steps: total, stop_at: total === null ? (cfg.max_steps ?? null) : Math.min(cfg.max_steps ?? total, total),
    config_hash: configHash(cfg), output, missing,
  };
}

/**
 * What `launch` and `coordinator` check before any worker starts (the checks of --dry-run, plus the
 * model's weights headers, so a truncated file is found here): a wrong method, config, model or
 * data file is exit 2 now rather than a worker's exit 2 later. Files not on this machine are fatal
 * with `local` (launch: the workers run here), else returned for a warning (the coordinator's
 * workers may have them on their own volumes).
 */
export async function checkRunInputs(cfg: RunConfig, output: string, workers: number, local: boolean): Promise<string[]> {
  const plan = await planRun(cfg, output, workers);
  if (plan.missing.length > 0 && local) throw new UserError(`not found (the workers need them): ${plan.missing.join('; ')}`);
  const dir = cfg.model.path;
  if (dir && plan.model.found && WEIGHTS.some((f) => fs.existsSync(path.join(dir, f)))) openSafetensorsDir(dir).close();
  return plan.missing;
}

/** The weights files openSafetensorsDir reads for LLaMA and ViT directories (a DiT's are checked when its workers load them). */
const WEIGHTS = ['model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin', 'pytorch_model.bin.index.json'];

export function formatPlan(p: RunPlan): string {
  const n = (v: number | null) => (v === null ? '?' : v.toLocaleString('en-US'));
  const lines = [
    `dry run: would train ${p.model.ref} (${p.model.family ?? 'model not found here'}, ${n(p.model.params)} parameters) with ${p.method}`,
    `  trainable parameters: ${n(p.trainable)}${p.head ? ` (+ ${n(p.head)} in the new task head)` : ''}`,
    `  batch: global ${p.global_batch} = ${p.workers} worker(s) × micro ${p.micro_batch} × accumulation ${p.accumulation}`,
    `  steps: ${n(p.stop_at)} of a ${n(p.total_steps)}-step schedule`,
    ...Object.entries(p.data).map(([k, d]) => `  data.${k}: ${d.file} (${d.found ? `${n(d.rows)} rows` : 'not found here'})`),
    `  output: ${p.output}   config hash ${p.config_hash.slice(0, 12)}…`,
  ];
  if (p.missing.length) lines.push(`  not found on this machine (the run needs them): ${p.missing.join('; ')}`);
  return lines.join('\n');
}

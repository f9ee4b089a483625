// `onelora train --preset NAME | --config FILE [--method SPEC] [--max-steps N] [--output DIR]
//  [--seed S] [--backend B] [--set key=value]...` and `onelora train --resume DIR [--max-steps N]`
// (DESIGN.md §5). Every flag is one `--set`, so flags and YAML go through the same parser.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { FLAG_KEYS, loadConfig, loadPreset, type RunConfig } from '../../config/index.js';
import { UserError } from '../../errors.js';
import { formatPlan, planRun } from '../../train/plan.js';
import { train, type TrainSummary } from '../../train/trainer.js';
import { action, collect, intFlag, printResult } from '../run.js';

export interface RunFlags {
  preset?: string;
  config?: string;
  method?: string;
  maxSteps?: number;
  output?: string;
  seed?: number;
  backend?: string;
  set?: string[];
  json?: boolean;
  resume?: string;
}

/** The flags that become `--set key=value` overrides, in a fixed order. */
export function flagOverrides(f: RunFlags & { workers?: number; minWorkers?: number; maxFailures?: number }): string[] {
  const out: string[] = [];
  for (const [flag, key] of Object.entries(FLAG_KEYS) as [keyof typeof FLAG_KEYS, string][]) {
    const v = f[flag];
    if (v !== undefined && !(flag === 'output' || flag === 'maxSteps')) out.push(`${key}=${String(v)}`);
  }
  return [...out, ...(f.set ?? [])];
}

/** Resolves --preset / --config / --resume plus overrides into a validated RunConfig. */
export function resolveRunConfig(f: RunFlags & { workers?: number; minWorkers?: number; maxFailures?: number }): RunConfig {
  const sets = flagOverrides(f);
  if (f.resume) {
    const file = path.join(f.resume, 'config.yaml');
    if (!fs.existsSync(file)) throw new UserError(`--resume ${f.resume}: no config.yaml there (not a run output directory?)`);
    if (f.preset || f.config) throw new UserError('--resume takes the config saved in the run directory; drop --preset/--config');
    return loadConfig(file, sets);
  }
  if (!!f.preset === !!f.config) throw new UserError('give exactly one of --preset NAME or --config FILE (or --resume DIR)');
  return f.preset ? loadPreset(f.preset, sets) : loadConfig(f.config as string, sets);
}

export function addRunFlags(cmd: Command): Command {
  return cmd
    .option('--preset <name>', 'a preset from presets/NAME.yaml')
    .option('--config <file>', 'a run config YAML (DESIGN.md §6)')
    .option('--method <spec>', 'method SPEC, e.g. 1lora, lora:r=1, 1lora+norms')
    .option('--max-steps <n>', 'absolute optimizer step to stop at (never changes the schedule)', intFlag('--max-steps', 1))
    .option('--output <dir>', 'run output directory (default runs/<preset or config name>)')
    .option('--seed <n>', 'seed of every random choice', intFlag('--seed', 0))
    .option('--backend <name>', 'auto|tensorflow-gpu|tensorflow|wasm|cpu')
    .option('--set <key=value>', 'set any config key (repeatable)', collect, [] as string[])
    .option('--json', 'print the summary as one JSON object on the last line');
}

export function defaultOutput(f: RunFlags, cfg: RunConfig): string {
  if (f.output) return f.output;
  if (f.resume) return f.resume;
  if (cfg.output) return cfg.output;
  const name = f.preset ?? path.basename(f.config ?? 'run', path.extname(f.config ?? ''));
  return path.join('runs', name);
}

function pct(before: number | undefined, after: number | undefined): string {
  if (before === undefined || after === undefined) return '';
  return ` (${after >= before ? '+' : ''}${((after - before) * 100).toFixed(1)} points)`;
}

/** The human summary of a run: what the default job prints. */
export function formatSummary(s: TrainSummary): string {
  const lines = [`onelora: ${s.method} trained ${s.steps}/${s.total_steps} steps on ${s.backend} in ${s.wall_s.toFixed(1)} s`];
  lines.push(`  trainable parameters: ${s.trainable.toLocaleString('en-US')}${s.head ? ` (+ ${s.head.toLocaleString('en-US')} in the new task head)` : ''}`);
  lines.push(`  peak tensor memory:   ${(s.peak_bytes / 2 ** 20).toFixed(1)} MiB`);
  const b = s.eval_before;
  const a = s.eval_after;
  if (b || a) {
    lines.push(`  validation loss:      ${b?.loss?.toFixed(4) ?? '-'} before → ${a?.loss?.toFixed(4) ?? '-'} after`);
    if (b?.accuracy !== undefined || a?.accuracy !== undefined) {
      const label = s.task === 'causal-lm' ? 'answer accuracy:' : 'accuracy:       ';
      lines.push(`  ${label}      ${((b?.accuracy ?? NaN) * 100).toFixed(1)}% before → ${((a?.accuracy ?? NaN) * 100).toFixed(1)}% after${pct(b?.accuracy, a?.accuracy)}`);
    }
  }
  for (const ex of s.examples ?? []) {
    lines.push('', `  question: ${ex.question}`, `  before:   ${ex.before}`, `  after:    ${ex.after}`, `  expected: ${ex.expected}`);
  }
  lines.push('', `  outputs in ${s.output} (adapter/, metrics.jsonl, checkpoints/, summary.json)`);
  return lines.join('\n');
}

export function registerTrain(program: Command): void {
  addRunFlags(program.command('train').description('fine-tune a model with a PEFT method in this process'))
    .option('--resume <dir>', 'continue the run in DIR from checkpoints/latest with its saved config')
    .option('--dry-run', 'check the config, model and data this machine can see and print the plan; train nothing')
    .action(action(async (f: RunFlags & { dryRun?: boolean }) => {
      const cfg = resolveRunConfig(f);
      const output = defaultOutput(f, cfg);
      if (f.dryRun) {
        const plan = await planRun(cfg, output);
        printResult(!!f.json, plan, formatPlan(plan));
        return;
      }
      const summary = await train(cfg, { output, resume: !!f.resume, maxSteps: f.maxSteps, backend: f.backend });
      printResult(!!f.json, summary, formatSummary(summary));
    }));
}

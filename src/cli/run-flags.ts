// The flags and config resolution that `train`, `launch` and `coordinator` share: every flag is
// one `--set key=value`, so flags and YAML go through the same parser.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { FLAG_KEYS, loadConfig, loadPreset, type RunConfig } from '../config/index.js';
import { UserError } from '../errors.js';
import { backendOption, collect, intFlag } from './flags.js';

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
  overwrite?: boolean;
  /** false with --no-tensorboard. */
  tensorboard?: boolean;
}

export const OVERWRITE_HELP = 'start afresh in an --output that holds a run: first delete its config.yaml, metrics.jsonl, summary.json, checkpoints/, adapter/, tensorboard/ and curves.png (nothing else); without it such a directory is refused';
export const TENSORBOARD_HELP = 'do not write TensorBoard event files under OUTPUT/tensorboard/ (written by default)';
export const RESUME_HELP = 'continue the run in DIR from checkpoints/latest with its saved config (a finished run is left as it is)';

/** The flags that become `--set key=value` overrides, in a fixed order. */
function flagOverrides(f: RunFlags & { workers?: number; minWorkers?: number; maxFailures?: number }): string[] {
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
    .option('--config <file>', 'a run config YAML (docs/config.md)')
    .option('--method <spec>', 'method SPEC, e.g. 1lora, lora:r=1, 1lora+norms')
    .option('--max-steps <n>', 'absolute optimizer step to stop at (never changes the schedule)', intFlag(1))
    .option('--output <dir>', 'run output directory (default runs/<preset or config name>)')
    .option('--overwrite', OVERWRITE_HELP)
    .option('--seed <n>', 'seed of every random choice', intFlag(0))
    .addOption(backendOption())
    .option('--set <key=value>', 'set any config key (repeatable)', collect, [] as string[])
    .option('--no-tensorboard', TENSORBOARD_HELP)
    .option('--json', 'print the summary as one JSON object on the last line');
}

export function defaultOutput(f: RunFlags, cfg: RunConfig): string {
  if (f.output) return f.output;
  if (f.resume) return f.resume;
  if (cfg.output) return cfg.output;
  const name = f.preset ?? path.basename(f.config ?? 'run', path.extname(f.config ?? ''));
  return path.join('runs', name);
}

/** The command line that resumes the run in `output` (what an interrupted run prints). */
export function resumeCommand(cmd: string, output: string, f: RunFlags, extra = ''): string {
  return `onelora ${cmd} --resume ${output}${extra}${f.maxSteps !== undefined ? ` --max-steps ${f.maxSteps}` : ''}${f.backend ? ` --backend ${f.backend}` : ''}`;
}

// The run configuration (docs/config.md): typed, frozen and validated once at the boundary. YAML
// files, presets and CLI flags (`--set key=value`, which every flag becomes) all go through
// parseConfig, so a value means the same wherever it comes from and every mistake is a UserError
// naming its source and dotted key. The schema and its defaults live in config/schema.ts.
import path from 'node:path';
import YAML from 'yaml';
import { UserError } from '../errors.js';
import { readTextFile } from '../json-file.js';
import { toUserError } from './issues.js';
import { PATH_KEYS, applyParsedOverrides, isPathLike, parseOverride } from './overrides.js';
import { runSchema, type RunConfig, type RunConfigData } from './schema.js';
import { configHash } from './hash.js';

export { BACKENDS } from './schema.js';

export type { RunConfig } from './schema.js';

/** The flags of `onelora train`/`launch` that are shorthands for one `--set`. */
export const FLAG_KEYS = {
  method: 'method',
  maxSteps: 'max_steps',
  output: 'output',
  seed: 'seed',
  backend: 'backend',
  workers: 'distributed.workers',
  minWorkers: 'distributed.min_workers',
  maxFailures: 'distributed.max_failures',
} as const;

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

function resolvePaths(cfg: RunConfigData, baseDir: string): void {
  for (const key of PATH_KEYS) {
    const [section, leaf] = key.includes('.') ? key.split('.') : [undefined, key];
    const holder = (section ? (cfg as unknown as Record<string, Record<string, unknown>>)[section] : cfg) as Record<string, unknown>;
    const v = holder[leaf!];
    if (typeof v === 'string' && isPathLike(key, v)) holder[leaf!] = path.resolve(baseDir, v);
  }
}

export interface ParseOptions {
  /** Names the YAML source in errors (a file path, or `preset NAME`). */
  readonly source: string;
  /** Relative paths in the YAML resolve against this directory. */
  readonly baseDir: string;
  /** `key=value` strings, applied in order on top of the YAML. */
  readonly overrides?: readonly string[];
}

/** Validates already-parsed YAML (plus overrides) into a frozen RunConfig with absolute paths. */
export function parseConfig(raw: unknown, opts: ParseOptions): RunConfig {
  const overrides = (opts.overrides ?? []).map(parseOverride);
  const merged = applyParsedOverrides(raw, overrides, opts.source);
  const result = runSchema.safeParse(merged);
  if (!result.success) throw toUserError(result.error, merged, opts.source, overrides);
  resolvePaths(result.data, opts.baseDir);
  return deepFreeze(result.data);
}

/** `raw` with `--set` strings applied (keys checked against the schema), not yet validated. */
export function applyOverrides(raw: unknown, sets: readonly string[], source = 'config'): Record<string, unknown> {
  return applyParsedOverrides(raw, sets.map(parseOverride), source);
}

export function parseYaml(text: string, source: string): unknown {
  try {
    return YAML.parse(text, { prettyErrors: true });
  } catch (err) {
    throw new UserError(`${source}: not valid YAML: ${(err as Error).message}`, { cause: err });
  }
}

export function loadConfig(file: string, overrides: readonly string[] = []): RunConfig {
  return parseConfig(parseYaml(readTextFile(file), file), { source: file, baseDir: path.dirname(path.resolve(file)), overrides });
}

/** The resolved config as YAML (the run's `config.yaml`); loadConfig reads it back to an equal config. */
export function toYaml(cfg: RunConfig): string {
  const body = YAML.stringify(JSON.parse(JSON.stringify(cfg)) as unknown, { lineWidth: 0 });
  return `# onelora resolved run configuration; config_hash ${configHash(cfg)}\n${body}`;
}

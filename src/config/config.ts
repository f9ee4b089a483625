// The run configuration (docs/config.md): typed, frozen and validated once at the boundary. YAML
// files, presets and CLI flags (`--set key=value`, which every flag becomes) all go through
// parseConfig, so a value means the same wherever it comes from and every mistake is a UserError
// naming its source and dotted key. The schema and its defaults live in config/schema.ts.
import path from 'node:path';
import YAML from 'yaml';
import { UserError } from '../errors.js';
import { readTextFile } from '../json-file.js';
import { toUserError } from './issues.js';
import { PATH_KEYS, applyParsedOverrides, isPathLike, parseOverride, type Override } from './overrides.js';
import { runSchema, type RunConfig, type RunConfigData } from './schema.js';
import { configHash } from './hash.js';

export { BACKENDS, DEPTH_DEFAULTS } from './schema.js';

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

/** Where a path value came from: as written, and what a relative one was resolved against. */
interface PathOrigin {
  readonly written: string;
  readonly source: string;
  readonly base: string;
}

/** Per parsed config; a config rebuilt from JSON (a worker's job spec) has none and names the resolved path alone. */
const origins = new WeakMap<object, ReadonlyMap<string, PathOrigin>>();

function holderOf(cfg: RunConfigData, key: string): { holder: Record<string, unknown> | undefined; leaf: string } {
  const [section, leaf] = key.includes('.') ? key.split('.') : [undefined, key];
  const holder = section ? (cfg as unknown as Record<string, Record<string, unknown> | undefined>)[section] : (cfg as unknown as Record<string, unknown>);
  return { holder, leaf: leaf! };
}

function resolvePaths(cfg: RunConfigData, baseDir: string, source: string, overrides: readonly Override[]): Map<string, PathOrigin> {
  const found = new Map<string, PathOrigin>();
  for (const key of PATH_KEYS) {
    const { holder, leaf } = holderOf(cfg, key);
    const v = holder?.[leaf];
    if (typeof v !== 'string' || !isPathLike(key, v)) continue;
    // The last --set that wrote this key (or its section) wins; its value is already absolute.
    const set = [...overrides].reverse().find((o) => o.key === key || key.startsWith(o.key + '.'));
    if (set) {
      found.set(key, { written: set.source, source: 'the command line', base: process.cwd() });
      continue;
    }
    holder![leaf] = path.resolve(baseDir, v);
    found.set(key, { written: v, source, base: baseDir });
  }
  return found;
}

/**
 * `KEY: RESOLVED` for messages about a path of the config, with the path as written and what it
 * was resolved against when the two differ, so a wrong base directory shows at a glance.
 */
export function describePath(cfg: RunConfig, key: (typeof PATH_KEYS)[number]): string {
  const { holder, leaf } = holderOf(cfg as RunConfigData, key);
  const resolved = String(holder?.[leaf]);
  const o = origins.get(cfg)?.get(key);
  if (!o || o.written === resolved) return `${key}: ${resolved}`;
  if (o.source === 'the command line') return `${key}: ${resolved} (from ${o.written}, relative to the working directory ${o.base})`;
  return `${key}: ${resolved} (written '${o.written}' in ${o.source}, relative to its directory ${o.base})`;
}

export interface ParseOptions {
  /** Names the YAML source in errors (a file path, or `preset NAME`). */
  readonly source: string;
  /** Relative paths in the YAML resolve against this directory: the file's own (docs/config.md#paths). */
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
  const found = resolvePaths(result.data, opts.baseDir, opts.source, overrides);
  const cfg = deepFreeze(result.data);
  origins.set(cfg, found);
  return cfg;
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

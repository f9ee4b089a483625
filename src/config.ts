// The run configuration (DESIGN.md §6): typed, frozen and validated once at the boundary. YAML
// files, presets and CLI flags (`--set key=value`, which every flag becomes) all go through
// parseConfig, so a value means the same wherever it comes from and every mistake is a UserError
// naming its source and dotted key. The schema and its defaults live in config/schema.ts.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { UserError } from './errors.js';
import { toUserError } from './config/issues.js';
import { PATH_KEYS, applyParsedOverrides, isPathLike, parseOverride } from './config/overrides.js';
import { runSchema, type RunConfigData } from './config/schema.js';

export { BACKENDS, METRICS, TASKS } from './config/schema.js';
export { knownKeys } from './config/keys.js';

type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends readonly unknown[]
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T extends object
      ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
      : T;

export type RunConfig = DeepReadonly<RunConfigData>;

/** Keys left out of the config hash: where to stop, where to write, what runs it and how wide (DESIGN §5–6). */
export const UNHASHED_KEYS = ['description', 'max_steps', 'output', 'backend', 'distributed'] as const;

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

function parseYaml(text: string, source: string): unknown {
  try {
    return YAML.parse(text, { prettyErrors: true });
  } catch (err) {
    throw new UserError(`${source}: not valid YAML: ${(err as Error).message}`, { cause: err });
  }
}

export function loadConfig(file: string, overrides: readonly string[] = []): RunConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`${file}: cannot read the config (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
  return parseConfig(parseYaml(text, file), { source: file, baseDir: path.dirname(path.resolve(file)), overrides });
}

/** The repository (package) root: the nearest directory above this file holding package.json. */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('onelora: package.json not found above src/config.ts');
    dir = up;
  }
  return dir;
}

export function presetsDir(): string {
  return path.join(repoRoot(), 'presets');
}

export function listPresets(): string[] {
  if (!fs.existsSync(presetsDir())) return [];
  return fs.readdirSync(presetsDir()).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5)).sort();
}

/** `presets/NAME.yaml`; its relative paths resolve against the repository root (presets/README.md). */
export function loadPreset(name: string, overrides: readonly string[] = []): RunConfig {
  const names = listPresets();
  if (!/^[\w.-]+$/.test(name) || !names.includes(name)) {
    throw new UserError(`--preset ${name}: no such preset (available: ${names.join(', ') || 'none'})`);
  }
  const file = path.join(presetsDir(), `${name}.yaml`);
  const raw = parseYaml(fs.readFileSync(file, 'utf8'), `presets/${name}.yaml`);
  return parseConfig(raw, { source: `presets/${name}.yaml`, baseDir: repoRoot(), overrides });
}

/** JSON with object keys sorted at every level and undefined members dropped. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const keys = Object.keys(v).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** sha256 (hex) of everything that changes the result, so a resume can refuse another run's checkpoint. */
export function configHash(cfg: RunConfig): string {
  const hashed: Record<string, unknown> = { ...cfg };
  for (const k of UNHASHED_KEYS) delete hashed[k];
  return createHash('sha256').update(canonicalJson(hashed)).digest('hex');
}

/** Micro-batches per optimizer step on each worker: global / (workers × micro), which must divide. */
export function deriveAccumulation(cfg: RunConfig, workers: number = cfg.distributed.workers): number {
  const { global, micro } = cfg.batch;
  if (!Number.isInteger(workers) || workers < 1) throw new UserError(`workers: expected a positive integer, got ${workers}`);
  if (global % (workers * micro) !== 0) {
    throw new UserError(
      `batch.global ${global} is not divisible by workers ${workers} × batch.micro ${micro} = ${workers * micro}; ` +
        'choose a global batch that is a multiple of workers × micro-batch',
    );
  }
  return global / (workers * micro);
}

/** The resolved config as YAML (the run's `config.yaml`); loadConfig reads it back to an equal config. */
export function toYaml(cfg: RunConfig): string {
  const body = YAML.stringify(JSON.parse(JSON.stringify(cfg)) as unknown, { lineWidth: 0 });
  return `# onelora resolved run configuration; config_hash ${configHash(cfg)}\n${body}`;
}

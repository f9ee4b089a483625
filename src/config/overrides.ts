// `--set key=value` (docs/config.md): every CLI flag becomes one of these, so flags, presets and YAML
// files all go through the same schema. Values are YAML scalars or flow collections, so `3e-4`,
// `true`, `[0.9, 0.99]` and `{preset: llama2-7b}` mean what they would in the file — except for
// keys that hold text (method SPECs, target regexes, paths), which take the value verbatim, since
// `[a-z]+_proj` or `a: b` would otherwise read as YAML collections.
import path from 'node:path';
import YAML from 'yaml';
import { UserError } from '../errors.js';
import { checkKey } from './keys.js';

export interface Override {
  readonly key: string;
  readonly path: readonly string[];
  readonly value: unknown;
  /** How errors name it: `--set optim.lr=fast`. */
  readonly source: string;
}

/** Keys whose values are paths; a relative path from the command line is relative to the working directory. */
export const PATH_KEYS = ['model.path', 'model.tokenizer', 'data.train', 'data.validation', 'data.test', 'output', 'diffusion.vae'] as const;

/** Setting one of a pair of alternatives drops the other, so `--set model.path=X` replaces a preset. */
const EXCLUSIVE: Record<string, string> = {
  'model.path': 'model.preset',
  'model.preset': 'model.path',
  'schedule.epochs': 'schedule.total_steps',
  'schedule.total_steps': 'schedule.epochs',
};

export function parseOverride(arg: string): Override {
  const source = `--set ${arg}`;
  const eq = arg.indexOf('=');
  if (eq <= 0) throw new UserError(`${source}: expected key=value, e.g. optim.lr=1e-4`);
  const key = arg.slice(0, eq).trim();
  const text = arg.slice(eq + 1);
  const { parts: keyPath, text: isText } = checkKey(key, source);
  let value: unknown;
  try {
    value = isText && !/^(['"]).*\1$/s.test(text) ? text : YAML.parse(text);
  } catch (err) {
    throw new UserError(`${source}: value is not a YAML scalar or flow collection (${(err as Error).message.split('\n')[0]})`, { cause: err });
  }
  return { key, path: keyPath, value: resolveCliPaths(key, value), source };
}

/** A tokenizer is a name unless it contains a separator; every other path key is always a path. */
export function isPathLike(key: string, value: string): boolean {
  return key !== 'model.tokenizer' || value.includes('/') || value.includes(path.sep);
}

/** Makes the relative paths in a value set at `key` (a path key or a section holding some) absolute against the working directory. */
function resolveCliPaths(key: string, value: unknown): unknown {
  for (const pk of PATH_KEYS) {
    if (pk === key) return typeof value === 'string' && isPathLike(pk, value) ? path.resolve(value) : value;
    if (pk.startsWith(key + '.') && isRecord(value)) {
      const leaf = pk.slice(key.length + 1);
      const v = value[leaf];
      if (typeof v === 'string' && isPathLike(pk, v)) value[leaf] = path.resolve(v);
    }
  }
  return value;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A deep copy of `raw` with each override applied in order; `raw` is left untouched. */
export function applyParsedOverrides(raw: unknown, overrides: readonly Override[], rawSource: string): Record<string, unknown> {
  if (raw !== undefined && raw !== null && !isRecord(raw)) {
    throw new UserError(`${rawSource}: expected a mapping of keys at the top level, got ${Array.isArray(raw) ? 'a list' : typeof raw}`);
  }
  const out = structuredClone(raw ?? {}) as Record<string, unknown>;
  for (const o of overrides) {
    let node = out;
    for (let i = 0; i < o.path.length - 1; i++) {
      const seg = o.path[i]!;
      if (node[seg] === undefined || node[seg] === null) node[seg] = {};
      const next = node[seg];
      if (!isRecord(next)) {
        throw new UserError(`${o.source}: '${o.path.slice(0, i + 1).join('.')}' is not a mapping in ${rawSource}, so it cannot take '${o.key}'`);
      }
      node = next;
    }
    const leaf = o.path[o.path.length - 1]!;
    node[leaf] = o.value;
    const other = EXCLUSIVE[o.key];
    if (other) delete node[other.split('.').pop()!];
  }
  return out;
}

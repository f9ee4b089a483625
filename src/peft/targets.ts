// Which linear layers a method adapts (docs/architecture.md#method-spec, like PEFT's target_modules):
// `all-linear` (default, as in the paper: every linear layer but the output head / classifier),
// `qkv` (attention q, k, v — fused qkv included), a comma list of short module names (a module
// matches when its path equals the name or ends with `.name`, PEFT's rule for lists), or any other
// text as a regex that must match the whole module path (PEFT's rule for a string).
import { UserError } from '../errors.js';
import type { LinearSpec } from '../nn/modules.js';

const DEFAULT_TARGETS = 'all-linear';
const NAME_LIST = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(,[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*$/;

export type TargetMatcher = (l: LinearSpec, isHead: boolean) => boolean;

/** Compiles a targets expression; a bad regex is a UserError naming it. */
export function compileTargets(expr: string, what = 'targets'): TargetMatcher {
  const e = expr.trim();
  if (e === 'all-linear') return (_l, isHead) => !isHead;
  if (e === 'qkv') return (l, isHead) => !isHead && (l.role === 'q' || l.role === 'k' || l.role === 'v' || l.role === 'qkv');
  if (NAME_LIST.test(e)) {
    const names = e.split(',');
    return (l) => names.some((n) => l.path === n || l.path.endsWith(`.${n}`));
  }
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${e})$`);
  } catch (err) {
    throw new UserError(`${what} '${expr}' is not a valid regex (${(err as Error).message})`);
  }
  return (l) => re.test(l.path);
}

export interface TargetOptions {
  readonly targets?: string;
  readonly exclude?: string;
  /** Head paths (never matched by all-linear / qkv). */
  readonly headPaths: readonly string[];
  /** A newly created task head is trained whole, so no method adapts it. */
  readonly newHead?: boolean;
}

/** The linears a term adapts, in model order; matching nothing is an error naming the expression. */
export function selectTargets<L extends LinearSpec>(linears: readonly L[], opts: TargetOptions): L[] {
  const expr = opts.targets ?? DEFAULT_TARGETS;
  const match = compileTargets(expr);
  const exclude = opts.exclude ? compileTargets(opts.exclude, 'exclude') : null;
  const heads = new Set(opts.headPaths);
  const out = linears.filter((l) => {
    const isHead = heads.has(l.path);
    if (isHead && opts.newHead) return false;
    return match(l, isHead) && !(exclude?.(l, isHead) ?? false);
  });
  if (out.length === 0) {
    const sample = [...new Set(linears.map((l) => shortName(l.path)))].slice(0, 12).join(', ');
    throw new UserError(`targets '${expr}'${opts.exclude ? ` (exclude '${opts.exclude}')` : ''} match no linear layer (short names here: ${sample})`);
  }
  return out;
}

/** The last path component: `model.layers.0.self_attn.q_proj` -> `q_proj`. */
export function shortName(path: string): string {
  const i = path.lastIndexOf('.');
  return i < 0 ? path : path.slice(i + 1);
}

/** PEFT's `target_modules` list for a set of modules: sorted unique short names. */
export function targetModuleNames(paths: readonly string[]): string[] {
  return [...new Set(paths.map(shortName))].sort();
}

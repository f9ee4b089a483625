// Method SPEC grammar (docs/architecture.md#method-spec): `term(+term)*`, each term a method name optionally followed
// by `:key=value,…`. The names and the keys each takes are the registry's (src/peft/registry.ts,
// each method's `keys`); the keys themselves (SPEC_KEYS, src/peft/types.ts) are r, lora_r, alpha,
// dropout, rslora, seed, targets, with the ranges parseTerm checks.
// A `targets` value may itself hold commas (`lora:r=1,targets=q_proj,v_proj`): a piece without
// `=` continues the previous value. A `+` inside a regex target stays in the value unless it is
// followed by a method name.
import { UserError } from '../errors.js';
import { DELTA_METHODS, isMethodName, METHOD_NAMES, methodDef, STACKABLE_METHODS, type MethodName } from './registry.js';
import { SPEC_KEYS, type SpecKey, type TermOptions } from './types.js';

export { METHOD_NAMES, type MethodName } from './registry.js';
export { DEFAULT_RANK, defaultAlpha, SPEC_KEYS, type SpecKey } from './types.js';

export interface MethodTerm extends TermOptions {
  readonly name: MethodName;
}

export interface MethodSpec {
  readonly terms: readonly MethodTerm[];
  /** Canonical text (`formatMethodSpec`): what adapter_config.json's `method` holds. */
  readonly text: string;
}

function splitTerms(spec: string): string[] {
  const parts = spec.split('+');
  const out: string[] = [];
  for (const p of parts) {
    const head = p.trim().split(':')[0]?.trim() ?? '';
    if (out.length > 0 && !isMethodName(head) && out[out.length - 1]!.includes('targets=')) out[out.length - 1] += `+${p}`;
    else out.push(p.trim());
  }
  return out;
}

function parseNumber(term: string, key: string, v: string, integer: boolean, min: number): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min) {
    throw new UserError(`method '${term}': key '${key}' expects ${integer ? 'an integer' : 'a number'} ≥ ${min}, got '${v}'`);
  }
  return n;
}

function parseTerm(text: string): MethodTerm {
  const colon = text.indexOf(':');
  const name = (colon < 0 ? text : text.slice(0, colon)).trim();
  if (!isMethodName(name)) {
    throw new UserError(`unknown method '${name}' (known: ${METHOD_NAMES.join(', ')})`);
  }
  const def = methodDef(name);
  const keys = def.keys.join(', ');
  const pairs: [string, string][] = [];
  if (colon >= 0) {
    for (const piece of text.slice(colon + 1).split(',')) {
      const eq = piece.indexOf('=');
      if (eq < 0 && pairs.length > 0 && pairs[pairs.length - 1]![0] === 'targets') {
        pairs[pairs.length - 1]![1] += `,${piece}`;
      } else if (eq < 0) {
        throw new UserError(`method '${name}': '${piece}' is not key=value (keys: ${keys || 'none'})`);
      } else {
        pairs.push([piece.slice(0, eq).trim(), piece.slice(eq + 1).trim()]);
      }
    }
  }
  const term: { -readonly [K in keyof MethodTerm]: MethodTerm[K] } = { name };
  for (const [key, v] of pairs) {
    if (!(SPEC_KEYS as readonly string[]).includes(key)) {
      throw new UserError(`method '${name}': unknown key '${key}' (keys: ${SPEC_KEYS.join(', ')})`);
    }
    if (!def.keys.includes(key as SpecKey)) {
      throw new UserError(`method '${name}': key '${key}' does not apply (it takes: ${keys || 'no keys'})`);
    }
    if (key in term) throw new UserError(`method '${name}': key '${key}' given twice`);
    if (key === 'r') term.r = parseNumber(name, key, v, true, 1);
    else if (key === 'lora_r') term.lora_r = parseNumber(name, key, v, true, 1);
    else if (key === 'dropout') {
      term.dropout = parseNumber(name, key, v, false, 0);
      if (term.dropout >= 1) throw new UserError(`method '${name}': key 'dropout' expects a probability in [0, 1), got '${v}'`);
    } else if (key === 'alpha') term.alpha = parseNumber(name, key, v, false, Number.MIN_VALUE);
    else if (key === 'seed') term.seed = parseNumber(name, key, v, true, 0);
    else if (key === 'rslora') {
      if (v !== 'true' && v !== 'false') throw new UserError(`method '${name}': key 'rslora' expects true or false, got '${v}'`);
      term.rslora = v === 'true';
    } else {
      if (v === '') throw new UserError(`method '${name}': key 'targets' is empty`);
      term.targets = v;
    }
  }
  def.validate?.(term);
  return term;
}

function formatTerm(t: MethodTerm): string {
  const kv: string[] = [];
  if (t.r !== undefined) kv.push(`r=${t.r}`);
  if (t.lora_r !== undefined) kv.push(`lora_r=${t.lora_r}`);
  if (t.alpha !== undefined) kv.push(`alpha=${t.alpha}`);
  if (t.dropout !== undefined) kv.push(`dropout=${t.dropout}`);
  if (t.rslora !== undefined) kv.push(`rslora=${t.rslora}`);
  if (t.seed !== undefined) kv.push(`seed=${t.seed}`);
  if (t.targets !== undefined) kv.push(`targets=${t.targets}`);
  return kv.length ? `${t.name}:${kv.join(',')}` : t.name;
}

export function formatMethodSpec(terms: readonly MethodTerm[]): string {
  return terms.map(formatTerm).join('+');
}

/** Parses and validates a SPEC once, at the boundary (CLI flag, YAML, adapter_config.json). */
export function parseMethodSpec(spec: string): MethodSpec {
  if (spec.trim() === '') throw new UserError(`empty method spec (known methods: ${METHOD_NAMES.join(', ')})`);
  const terms = splitTerms(spec).map(parseTerm);
  const seen = new Set<MethodName>();
  for (const t of terms) {
    if (seen.has(t.name)) throw new UserError(`method spec '${spec}': '${t.name}' appears twice`);
    seen.add(t.name);
  }
  const deltas = terms.filter((t) => DELTA_METHODS.includes(t.name));
  if (deltas.length > 1) {
    throw new UserError(`method spec '${spec}': ${deltas.map((t) => t.name).join(' and ')} both change the same layers; combine at most one of ${DELTA_METHODS.join(', ')} with ${STACKABLE_METHODS.join(', ')}`);
  }
  if (seen.has('all') && terms.length > 1) throw new UserError(`method spec '${spec}': 'all' trains everything and combines with nothing`);
  if (seen.has('difffit') && (seen.has('difffit-gamma') || seen.has('norms'))) {
    throw new UserError(`method spec '${spec}': 'difffit' already includes γ and the norms`);
  }
  return Object.freeze({ terms: Object.freeze(terms.map((t) => Object.freeze(t))), text: formatMethodSpec(terms) });
}

/** Accepts a SPEC string or an already parsed spec. */
export function toMethodSpec(spec: string | MethodSpec): MethodSpec {
  return typeof spec === 'string' ? parseMethodSpec(spec) : spec;
}

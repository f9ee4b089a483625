// What a model family's parameters are, computed from its config alone: the linear and norm
// modules (the PEFT seam), the other tensors, and their Hugging Face names and shapes. Loading
// (strict key matching), random initialisation, saving and `onelora params` all derive from it,
// so the four cannot disagree. Also the typed reader for Hugging Face config.json values.
import type { tf } from '../backend/tf.js';
import type { LinearRole, LinearSpec, NormSpec } from '../nn/modules.js';
import { UserError } from '../errors.js';

/** A model's variables by their Hugging Face names, as the family's loader created them. */
export type ParamTable = ReadonlyMap<string, tf.Variable>;

/** The variable `name` of `params`; a missing one is a bug of the family's layout (`family` names it). */
export function paramOf<R extends tf.Rank>(params: ParamTable, name: string, family: string): tf.Variable<R> {
  const v = params.get(name);
  if (!v) throw new Error(`${family}: parameter '${name}' was not created`);
  return v as tf.Variable<R>;
}

/** `linear`: an HF [out, in] weight held here as [in, out]; `plain`: held exactly as stored. */
export type ParamKind = 'linear' | 'plain';
export type ParamInit = 'normal' | 'zeros' | 'ones';

export interface ParamSpec {
  /** Hugging Face tensor name, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  readonly name: string;
  /** Shape as Hugging Face stores it ([out, in] for linear weights). */
  readonly shape: readonly number[];
  readonly kind: ParamKind;
  readonly init: ParamInit;
}

export interface ModelLayout {
  readonly linears: readonly LinearSpec[];
  readonly norms: readonly NormSpec[];
  /** Embeddings, position tables, layer scales: neither linear nor norm. */
  readonly extras: readonly ParamSpec[];
  readonly headPaths: readonly string[];
}

export function linearSpec(path: string, inFeatures: number, outFeatures: number, hasBias: boolean, role: LinearRole): LinearSpec {
  return { path, inFeatures, outFeatures, hasBias, role };
}

/** Every tensor of the layout under its HF name and HF shape. */
export function paramSpecs(layout: ModelLayout): ParamSpec[] {
  const out: ParamSpec[] = [...layout.extras];
  for (const l of layout.linears) {
    out.push({ name: `${l.path}.weight`, shape: [l.outFeatures, l.inFeatures], kind: 'linear', init: 'normal' });
    if (l.hasBias) out.push({ name: `${l.path}.bias`, shape: [l.outFeatures], kind: 'plain', init: 'zeros' });
  }
  for (const n of layout.norms) {
    out.push({ name: `${n.path}.weight`, shape: [n.features], kind: 'plain', init: 'ones' });
    if (n.hasBias) out.push({ name: `${n.path}.bias`, shape: [n.features], kind: 'plain', init: 'zeros' });
  }
  return out;
}

export function countParams(layout: ModelLayout): number {
  return paramSpecs(layout).reduce((sum, p) => sum + p.shape.reduce((a, b) => a * b, 1), 0);
}

/** Typed access to a Hugging Face config.json; errors name the file and the key. */
export class HfConfigReader {
  constructor(
    readonly raw: Readonly<Record<string, unknown>>,
    readonly source: string,
  ) {}

  private fail(key: string, want: string): never {
    throw new UserError(`${this.source}: '${key}' must be ${want}, got ${JSON.stringify(this.raw[key])}`);
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }

  int(key: string, def?: number, min = 1): number {
    const v = this.raw[key] ?? def;
    if (v === undefined) throw new UserError(`${this.source}: '${key}' is missing`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.fail(key, `an integer ≥ ${min}`);
    return v;
  }

  num(key: string, def?: number): number {
    const v = this.raw[key] ?? def;
    if (v === undefined) throw new UserError(`${this.source}: '${key}' is missing`);
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, 'a number');
    return v;
  }

  bool(key: string, def: boolean): boolean {
    const v = this.raw[key] ?? def;
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }

  str(key: string, def: string): string {
    const v = this.raw[key] ?? def;
    if (typeof v !== 'string') this.fail(key, 'a string');
    return v;
  }

  /** An id or the first of a list of ids (newer configs give several EOS ids); null when absent. */
  tokenId(key: string): number | null {
    const v = this.raw[key];
    if (v === undefined || v === null) return null;
    const first = Array.isArray(v) ? (v[0] as unknown) : v;
    if (typeof first !== 'number' || !Number.isInteger(first) || first < 0) this.fail(key, 'a token id or a list of them');
    return first;
  }

  /** Every id of a key that holds one id or a list of them (Llama 3: eos_token_id [128001, 128009]); [] when absent. */
  tokenIds(key: string): number[] {
    const v = this.raw[key];
    if (v === undefined || v === null) return [];
    const ids: unknown[] = Array.isArray(v) ? v : [v];
    if (!ids.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) this.fail(key, 'a token id or a list of them');
    return ids as number[];
  }

  numList(key: string, def: readonly number[], len: number): number[] {
    const v = this.raw[key] ?? def;
    if (!Array.isArray(v) || v.length !== len || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      this.fail(key, `a list of ${len} numbers`);
    }
    return v as number[];
  }

  /** Keys whose value would change the maths and that this implementation does not support. */
  refuse(key: string, ok: (v: unknown) => boolean, why: string): void {
    const v = this.raw[key];
    if (v !== undefined && v !== null && !ok(v)) {
      throw new UserError(`${this.source}: '${key}' = ${JSON.stringify(v)} is not supported (${why})`);
    }
  }
}

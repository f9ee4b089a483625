// Counting trainable parameters from shapes alone (docs/cli.md `params`): the same target
// selection and per-method shapes as `applyMethod`, no tensor allocated, so a 13B model counts in
// milliseconds. The result must equal the element count of the trainable tensors of the model
// actually built (test/peft/count.test.ts checks every method on tiny models) and reproduce the
// 1LoRA paper's tables (test/peft/paper-counts.test.ts).
import type { LinearSpec, NormSpec } from '../nn/modules.js';
import { actsOnLinears } from './apply.js';
import { methodDef } from './registry.js';
import { toMethodSpec, type MethodSpec } from './spec.js';
import { selectTargets, targetModuleNames } from './targets.js';
import { KEY_PREFIX } from './types.js';

export interface CountDescription {
  readonly linears: readonly LinearSpec[];
  readonly norms: readonly NormSpec[];
  readonly headPaths: readonly string[];
  /** Every parameter of the model (embeddings too); needed only to count `all` exactly. */
  readonly totalParams?: number;
  /** 'vit': the classifier is a new task head, trained whole and reported as `head`. */
  readonly family?: string;
  /** Elements of other parameters made for the task (a DiT's new class table): trained whole, reported in `head`. */
  readonly headParams?: number;
}

export interface CountOptions {
  readonly targets?: string;
  readonly exclude?: string;
  /** Overrides the family rule for the new task head. */
  readonly trainHead?: boolean;
}

export interface CountResult extends ParamCount {
  readonly method: string;
  /** Short names of the adapted linear modules (PEFT's target_modules). */
  readonly targets: string[];
  readonly bytes_fp32: number;
  /** Adapted linear layers. */
  readonly layers: number;
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function linearNumel(l: LinearSpec): number {
  return l.inFeatures * l.outFeatures + (l.hasBias ? l.outFeatures : 0);
}

/** Adapter-file key → element count of every trainable tensor `applyMethod` would create (head excluded). */
export function trainableKeys(desc: CountDescription, spec: string | MethodSpec, opts: CountOptions = {}): {
  keys: Map<string, number>; layers: LinearSpec[]; head: number; rest: number;
} {
  const parsed = toMethodSpec(spec);
  const newHead = opts.trainHead ?? desc.family === 'vit';
  const heads = new Set(desc.headPaths);
  const keys = new Map<string, number>();
  const touched = new Set<string>();
  let rest = 0;
  for (const term of parsed.terms) {
    const def = methodDef(term.name);
    const layers = actsOnLinears(def)
      ? selectTargets(desc.linears, { targets: term.targets ?? opts.targets, exclude: opts.exclude, headPaths: desc.headPaths, newHead })
      : def.kind === 'all' ? desc.linears.filter((l) => !(newHead && heads.has(l.path))) : [];
    for (const l of layers) {
      if (actsOnLinears(def)) touched.add(l.path);
      for (const [name, shape] of Object.entries(def.linearParams(l, term))) keys.set(`${KEY_PREFIX}${l.path}.${name}`, numel(shape));
    }
    if (def.trainsNorms) {
      for (const n of desc.norms) {
        keys.set(`${KEY_PREFIX}${n.path}.weight`, n.features);
        if (n.hasBias) keys.set(`${KEY_PREFIX}${n.path}.bias`, n.features);
      }
    }
    if (def.kind === 'all' && desc.totalParams !== undefined) {
      // Embeddings and anything else that is neither a linear nor a norm.
      const known = desc.linears.reduce((a, l) => a + linearNumel(l), 0) + desc.norms.reduce((a, n) => a + n.features * (n.hasBias ? 2 : 1), 0);
      rest = desc.totalParams - known - (desc.headParams ?? 0);
    }
  }
  const head = (newHead ? desc.linears.filter((l) => heads.has(l.path)).reduce((a, l) => a + linearNumel(l), 0) : 0) + (desc.headParams ?? 0);
  return { keys, layers: desc.linears.filter((l) => touched.has(l.path)), head, rest };
}

/**
 * The one parameter count every command reports (`params`, `train --dry-run`, the summary of
 * `train` and `launch`, `bench methods`): the adapter's trainable elements, and apart from them those
 * of a task head created for the run (PEFT's modules_to_save; a ViT classifier, a DiT class table),
 * as the 1LoRA paper's tables count (docs/architecture.md#the-method).
 */
export interface ParamCount {
  readonly trainable: number;
  readonly head: number;
}

/** The count of a built PEFT state; countTrainable gives the same from shapes alone (test/peft/conformance.test.ts). */
export function paramCount(state: { readonly trainable: ReadonlyMap<string, { readonly size: number }>; readonly headKeys: ReadonlySet<string> }): ParamCount {
  let trainable = 0;
  let head = 0;
  for (const [key, v] of state.trainable) {
    if (state.headKeys.has(key)) head += v.size;
    else trainable += v.size;
  }
  return { trainable, head };
}

export function countTrainable(desc: CountDescription, spec: string | MethodSpec, opts: CountOptions = {}): CountResult {
  const parsed = toMethodSpec(spec);
  const { keys, layers, head, rest } = trainableKeys(desc, parsed, opts);
  const trainable = [...keys.values()].reduce((a, b) => a + b, 0) + rest;
  return {
    method: parsed.text,
    targets: targetModuleNames(layers.map((l) => l.path)),
    trainable,
    bytes_fp32: 4 * trainable,
    layers: layers.length,
    head,
  };
}

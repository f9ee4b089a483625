// The PEFT library's public types. The per-layer adapter interface itself lives next to the
// modules it plugs into (src/nn/modules.ts), so models do not depend on the library.
// A method is one `MethodDef` (docs/internals.md#one-method-one-file): what it trains per target linear (shapes, which is
// all counting needs), and for methods that change a layer's output, an adapter factory.
import type { tf } from '../backend/tf.js';
import type { AdaptableModel, LinearAdapter, LinearModule, LinearSpec } from '../nn/modules.js';

export type { LinearAdapter, LinearSpec, NormSpec, AdaptableModel } from '../nn/modules.js';

/** The keys a SPEC term may set (`lora:r=2,alpha=4`); each method declares the ones it takes. */
export const SPEC_KEYS = ['r', 'lora_r', 'alpha', 'dropout', 'rslora', 'seed', 'targets'] as const;
export type SpecKey = (typeof SPEC_KEYS)[number];

/** A term's key values: what a method reads of its term (the parsed term adds its name, src/peft/spec.ts). */
export interface TermOptions {
  /** Rank; for MoRA r̂ itself. Absent: the paper's default (1, or round(√d) per layer for MoRA). */
  readonly r?: number;
  /** MoRA only: peft-mora's `r`, a LoRA rank from which r̂ = ⌊√((k + d)·lora_r) + ½⌋ is derived. */
  readonly lora_r?: number;
  readonly alpha?: number;
  /** PEFT's lora_dropout / vera_dropout: p of the dropout on the adapter's input, training only (0: none). */
  readonly dropout?: number;
  readonly rslora?: boolean;
  readonly seed?: number;
  readonly targets?: string;
}

/** Default rank: the paper's very-low-rank regime (r = 1 for LoRA, DoRA, VeRA). */
export const DEFAULT_RANK = 1;

/**
 * LoRA's α when not given: 2·r, so the scale s = α/r = 2 whatever the rank (the convention of
 * the LoRA/MoRA fine-tuning scripts the paper follows); PEFT's α = 8 would mean s = 8 at r = 1.
 */
export function defaultAlpha(r: number): number {
  return 2 * r;
}

/** Adapter-file keys are `base_model.model.<module path>.<name>` (PEFT's layout). */
export const KEY_PREFIX = 'base_model.model.';

export interface BuildContext {
  /** The term's seed, else the caller's. Each tensor mixes in its own key (src/peft/init.ts). */
  readonly seed: number;
  readonly term: TermOptions;
  /** Every linear this term adapts: VeRA sizes its shared matrices from them. */
  readonly layers: readonly LinearModule[];
  /** Frozen tensors shared by all layers, under their file keys (VeRA's `base_model.vera_A`). */
  readonly shared: Map<string, tf.Variable>;
}

/**
 * How a method acts on a linear layer:
 * - `delta`: adds a term to the output (1LoRA, LoRA, …), at most one per layer;
 * - `bias`: trains the layer's bias, adding a zero bias where there is none (BitFit);
 * - `gamma`: scales the output (DiffFit's γ); `difffit`: γ + the existing biases + the norms;
 * - `norms`: trains the normalization layers only; `all`: trains everything.
 */
export type MethodKind = 'delta' | 'bias' | 'gamma' | 'difffit' | 'norms' | 'all';

/**
 * `N` is the SPEC name as a literal type (`defineMethod` infers it), so the registry's list of
 * definitions is also the type of the names (src/peft/registry.ts).
 */
export interface MethodDef<N extends string = string> {
  readonly name: N;
  readonly kind: MethodKind;
  /**
   * The SPEC keys the term accepts, in the order its error messages list them. A method takes a
   * rank exactly when it declares `r` (then the config's `rank` and `--rank` apply to it).
   */
  readonly keys: readonly SpecKey[];
  /** Checks a parsed term beyond each key's own range (MoRA 6: r even); throws a UserError. */
  validate?(term: TermOptions): void;
  /** One-line description with the paper it comes from (docs/methods.md repeats it). */
  readonly summary: string;
  /** Can be folded into W0 and β for free inference. */
  readonly mergeable: boolean;
  /** The adapted model computes exactly the base model right after init. */
  readonly identityAtInit: boolean;
  /**
   * The trainable tensors one target linear gets, by name relative to the module, with their
   * shapes as stored in the adapter file (PyTorch layout): all that counting needs.
   */
  linearParams(l: LinearSpec, term: TermOptions): Readonly<Record<string, readonly number[]>>;
  /** Delta and gamma methods: the adapter of one layer (init seeded from ctx). */
  createAdapter?(layer: LinearModule, ctx: BuildContext, inner: LinearAdapter | null): LinearAdapter;
  /**
   * Selection methods (BitFit, DiffFit's β, all): mark a target layer's own parameters trainable
   * (setting the LinearModule flags the fast primitive reads), adding a zero bias where BitFit
   * needs one; returns them by name relative to the module (`bias`, `weight`).
   */
  selectLinear?(layer: LinearModule): ReadonlyMap<string, tf.Variable>;
  /** The normalization layers train too (norms, DiffFit); counted from NormSpecs. */
  readonly trainsNorms?: boolean;
  /** Model-level selection ('all'): every parameter by its Hugging Face name. */
  selectModel?(model: AdaptableModel): ReadonlyMap<string, tf.Variable>;
}

/** Declares a method with its name kept as a literal type (`MethodDef<'lora'>`). */
export function defineMethod<N extends string>(def: MethodDef<N>): MethodDef<N> {
  return def;
}

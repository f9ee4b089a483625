// The PEFT library's public types. The per-layer adapter interface itself lives next to the
// modules it plugs into (src/nn/modules.ts), so models do not depend on the library.
// A method is one `MethodDef` (STYLE item 1): what it trains per target linear (shapes, which is
// all counting needs), and for methods that change a layer's output, an adapter factory.
import type { tf } from '../backend/tf.js';
import type { AdaptableModel, LinearAdapter, LinearModule, LinearSpec } from '../nn/modules.js';
import type { MethodName, MethodTerm } from './spec.js';

export type { LinearAdapter, LinearSpec, NormSpec, AdaptableModel } from '../nn/modules.js';

/** Adapter-file keys are `base_model.model.<module path>.<name>` (PEFT's layout). */
export const KEY_PREFIX = 'base_model.model.';

export interface BuildContext {
  /** The term's seed, else the caller's. Each tensor mixes in its own key (src/peft/init.ts). */
  readonly seed: number;
  readonly term: MethodTerm;
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

export interface MethodDef {
  readonly name: MethodName;
  readonly kind: MethodKind;
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
  linearParams(l: LinearSpec, term: MethodTerm): Readonly<Record<string, readonly number[]>>;
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

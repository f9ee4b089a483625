// DoRA — "DoRA: Weight-Decomposed Low-Rank Adaptation", Liu et al., ICML 2024 (arXiv 2402.09353):
// y = g ⊙ (W0 + sBA) x + β with g = m / ‖W0 + sBA‖, the norm taken over the input axis (one per
// output feature) and detached from the graph (§4.3 of the paper; PEFT does the same), β not
// scaled. m = ‖W0‖ at init, so DoRA starts as the identity. With dropout (PEFT's DoraLinearLayer
// when lora_dropout is active): y = W0 x + β + (g − 1) ⊙ W0 x̃ + g ⊙ sBA x̃, x̃ = dropout(x), which
// is the formula above when x̃ = x. Builds on LoRA (docs/internals.md#one-method-one-file): the
// low-rank part is LoraAdapter's, DoRA adds the magnitude.
import { canReadSync } from '../backend/read.js';
import { tf } from '../backend/tf.js';
import { customOp, linear } from '../backend/linear.js';
import type { LinearModule } from '../nn/modules.js';
import { uniqueName } from './init.js';
import { LoraAdapter, lora } from './lora.js';
import { defineMethod, type BuildContext } from './types.js';

type T1 = tf.Tensor1D;
type T2 = tf.Tensor2D;

/** Smallest column norm divided by (float32 normals reach 1e-38; 1e-30 keeps m/‖·‖ finite). */
const NORM_FLOOR = 1e-30;

/** ‖W0‖² per output column of a kernel-layout [k, d] weight: [d]. */
function colSquares(w: T2): T1 {
  return tf.sum(tf.square(w), 0);
}

/** y + β with β closed over: the tape sees only y. */
function addFrozen(y: T2, bias: T1): T2 {
  return customOp<T2>([y], ([yi]) => ({ value: tf.add(yi as T2, bias), gradFunc: (dy) => dy }));
}

export class DoraAdapter extends LoraAdapter {
  override readonly method = 'dora';
  /** m [d]: `lora_magnitude_vector` */
  readonly m: tf.Variable<tf.Rank.R1>;
  /** g used by the last merge, for unmerge; and W0 itself when some g was 0 (then W0 cannot be divided back out). */
  private mergedScale: T1 | null = null;
  private mergedW0: T2 | null = null;
  private w0sq: { id: object; sq: T1 } | null = null;

  constructor(layer: LinearModule, ctx: BuildContext) {
    super(layer, ctx);
    this.m = this.trained('lora_magnitude_vector', tf.tidy(() => tf.variable(tf.tidy(() => tf.sqrt(colSquares(layer.weight))), true, uniqueName(`${layer.path}.lora_magnitude_vector`))));
  }

  /** ‖W0‖² is fixed while W0 is: cached, keyed by the weight's dataId (assign swaps it). */
  private w0Squares(w: T2): T1 {
    const id = (w as unknown as { dataId: object }).dataId;
    if (this.w0sq?.id !== id) {
      this.w0sq?.sq.dispose();
      this.w0sq = { id, sq: tf.keep(tf.tidy(() => colSquares(w))) };
    }
    return this.w0sq.sq;
  }

  /**
   * ‖W0 + s A_k B_k‖ per output column without forming the [k, d] matrix:
   * ‖W0_j‖² + 2s Σ_r B[r,j] (A_kᵀ W0)[r,j] + s² Σ_{r,r'} B[r,j] (A_kᵀA_k)[r,r'] B[r',j].
   * Detached: a custom op whose gradient is zero for A and B.
   */
  weightNorm(layer: LinearModule): T1 {
    const w = layer.weight;
    const sq = this.w0Squares(w);
    const s = this.scale;
    return customOp<T1>([this.A, this.B], ([a, b]) => {
      const aT = tf.transpose(a as T2); // [r, k]
      const cross = tf.sum(tf.mul(b as T2, tf.matMul(aT, w)), 0); // [r, d] -> [d]
      const quad = tf.sum(tf.mul(b as T2, tf.matMul(tf.matMul(aT, a as T2), b as T2)), 0); // [d]
      // Floored: a column of W0 that is all zeros (DiT's adaLN-Zero modulation, a zero-initialised
      // head) has m = 0 and norm 0 at init, and 0/0 made the first step's loss NaN. m / NORM_FLOOR
      // is then 0, the column's output 0, as it is without the adapter.
      const value = tf.maximum(tf.sqrt(tf.maximum(tf.add(sq, tf.add(tf.mul(cross, 2 * s), tf.mul(quad, s * s))), 0)), NORM_FLOOR) as T1;
      return { value, gradFunc: () => [tf.zerosLike(a as T2), tf.zerosLike(b as T2)] };
    });
  }

  private magnitudeScale(layer: LinearModule): T1 {
    return tf.div(this.m, this.weightNorm(layer));
  }

  override forward(layer: LinearModule, x: T2): T2 {
    const xd = this.branchInput(x);
    if (xd !== x) {
      const g = this.magnitudeScale(layer); // [d]
      const w0x = linear(xd, layer.weight); // W0 x̃: [N, d]
      return tf.add(layer.base(x), tf.add(tf.mul(w0x, tf.sub(g, 1)), tf.mul(this.loraDelta(xd), g))) as T2;
    }
    const inner: T2 = tf.add(linear(x, layer.weight), this.loraDelta(x)); // (W0 + sBA) x: [N, d]
    const y: T2 = tf.mul(inner, this.magnitudeScale(layer));
    if (!layer.bias) return y;
    // A frozen β must not get a gradient (as in the linear primitive): added inside a custom op.
    return layer.trainBias ? tf.add(y, layer.bias) : addFrozen(y, layer.bias);
  }

  /** Not additive (g rescales W0 as well): W0 ← g ⊙ (W0 + ΔW), undone from the g it used. */
  override merge(layer: LinearModule): void {
    const g = tf.keep(tf.tidy(() => this.magnitudeScale(layer)));
    // A zero scale cannot be divided out on unmerge: keep W0. A GPU backend cannot read the check
    // synchronously, so there W0 is always kept (one weight's memory per merged layer).
    if (!canReadSync() || tf.tidy(() => tf.min(tf.abs(g)).dataSync()[0]!) === 0) this.mergedW0 = tf.keep(tf.clone(layer.weight));
    tf.tidy(() => {
      layer.weight.assign(tf.mul(tf.add(layer.weight, this.delta()), g));
    });
    this.mergedScale = g;
  }

  override unmerge(layer: LinearModule): void {
    const g = this.mergedScale;
    if (!g) return;
    tf.tidy(() => {
      layer.weight.assign(this.mergedW0 ?? tf.sub(tf.div(layer.weight, g), this.delta()));
    });
    g.dispose();
    this.mergedW0?.dispose();
    this.mergedScale = null;
    this.mergedW0 = null;
  }

  override dispose(): void {
    super.dispose();
    this.mergedScale?.dispose();
    this.mergedW0?.dispose();
    this.w0sq?.sq.dispose();
  }
}

export const dora = defineMethod({
  name: 'dora',
  kind: 'delta',
  keys: lora.keys,
  summary: 'DoRA (Liu et al. 2024): m/‖W0 + sBA‖ ⊙ (W0 + sBA)x + β, norm per output row, detached',
  mergeable: true,
  identityAtInit: true,
  linearParams: (l, term) => ({ ...lora.linearParams(l, term), lora_magnitude_vector: [l.outFeatures] }),
  createAdapter: (layer, ctx) => new DoraAdapter(layer, ctx),
});

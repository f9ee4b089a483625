// VeRA — "VeRA: Vector-based Random Matrix Adaptation", Kopiczko et al., ICLR 2024 (arXiv
// 2310.11454): y = W0 x + λ_b ⊙ (B (λ_d ⊙ (A x))). A (r × k_max) and B (d_max × r) are frozen and
// shared by every adapted layer, drawn once from one seed (kaiming-uniform with gain √2 as PEFT's
// `_kaiming_init`: U(±√6/√fan_in)); a layer uses A[:, :k] and B[:d, :]. λ_b = 0, λ_d = 0.1 (PEFT's
// d_initial). Files: `vera_lambda_b` [d], `vera_lambda_d` [r] per layer, `base_model.vera_A`
// [r, k_max] and `base_model.vera_B` [d_max, r] once (save_projection: true). `dropout` is PEFT's
// vera_dropout, on the input of the A B branch in training forwards (src/nn/dropout.ts).
import { tf } from '../backend/tf.js';
import { linear } from '../backend/linear.js';
import { adapterDropout, dropoutKey } from '../nn/dropout.js';
import type { LinearModule } from '../nn/modules.js';
import { AdditiveAdapter } from './additive.js';
import { seededMatrix, uniqueName, zerosVar } from './init.js';
import { DEFAULT_RANK, defineMethod, type BuildContext } from './types.js';

type T2 = tf.Tensor2D;

export const VERA_A_KEY = 'base_model.vera_A';
export const VERA_B_KEY = 'base_model.vera_B';
export const VERA_D_INITIAL = 0.1;

/** The shared projections in kernel layout: A_k [k_max, r], B_k [r, d_max]; created once per apply. */
function veraShared(ctx: BuildContext): { A: tf.Variable<tf.Rank.R2>; B: tf.Variable<tf.Rank.R2> } {
  const r = ctx.term.r ?? DEFAULT_RANK;
  if (!ctx.shared.has(VERA_A_KEY)) {
    const kMax = Math.max(...ctx.layers.map((l) => l.inFeatures));
    const dMax = Math.max(...ctx.layers.map((l) => l.outFeatures));
    // fan_in of vera_A [r, k_max] is k_max, of vera_B [d_max, r] is r.
    const a = seededMatrix([r, kMax], Math.sqrt(6 / kMax), ctx.seed, VERA_A_KEY, true);
    const b = seededMatrix([dMax, r], Math.sqrt(6 / r), ctx.seed, VERA_B_KEY, true);
    ctx.shared.set(VERA_A_KEY, tf.variable(a, false, uniqueName(VERA_A_KEY)));
    ctx.shared.set(VERA_B_KEY, tf.variable(b, false, uniqueName(VERA_B_KEY)));
    tf.dispose([a, b]); // the variables hold their own references to the data
  }
  return { A: ctx.shared.get(VERA_A_KEY) as tf.Variable<tf.Rank.R2>, B: ctx.shared.get(VERA_B_KEY) as tf.Variable<tf.Rank.R2> };
}

export class VeraAdapter extends AdditiveAdapter {
  readonly method = 'vera';
  readonly lambdaB: tf.Variable<tf.Rank.R1>;
  readonly lambdaD: tf.Variable<tf.Rank.R1>;
  private readonly A: tf.Variable<tf.Rank.R2>;
  private readonly B: tf.Variable<tf.Rank.R2>;
  readonly dropout: number;
  private readonly dropoutKey: number;
  /** Per-layer slices, rebuilt when a shared matrix is reassigned (loading swaps its dataId). */
  private slices: { ids: [object, object]; a: T2; b: T2 } | null = null;

  constructor(layer: LinearModule, ctx: BuildContext) {
    super();
    const shared = veraShared(ctx);
    this.A = shared.A;
    this.B = shared.B;
    const r = this.A.shape[1];
    this.dropout = ctx.term.dropout ?? 0;
    this.dropoutKey = dropoutKey(layer.path);
    this.lambdaB = this.trained('vera_lambda_b', zerosVar([layer.outFeatures], `${layer.path}.vera_lambda_b`) as tf.Variable<tf.Rank.R1>);
    this.lambdaD = this.trained('vera_lambda_d', tf.tidy(() => tf.variable(tf.fill([r], VERA_D_INITIAL), true, uniqueName(`${layer.path}.vera_lambda_d`))) as tf.Variable<tf.Rank.R1>);
  }

  /** A[:, :k] and B[:d, :] in kernel layout: A_k[:k] [k, r], B_k[:, :d] [r, d]. */
  sliced(layer: LinearModule): { a: T2; b: T2 } {
    const ids: [object, object] = [(this.A as unknown as { dataId: object }).dataId, (this.B as unknown as { dataId: object }).dataId];
    if (!this.slices || this.slices.ids[0] !== ids[0] || this.slices.ids[1] !== ids[1]) {
      this.slices?.a.dispose();
      this.slices?.b.dispose();
      const r = this.A.shape[1];
      const a = tf.keep(tf.slice(this.A, [0, 0], [layer.inFeatures, r]));
      const b = tf.keep(tf.slice(this.B, [0, 0], [r, layer.outFeatures]));
      this.slices = { ids, a, b };
    }
    return this.slices;
  }

  forward(layer: LinearModule, x: T2): T2 {
    const { a, b } = this.sliced(layer);
    // A and B frozen: the linear primitive keeps no copy of x. [N, k] -> [N, r] -> [N, d]
    const h: T2 = tf.mul(linear(adapterDropout(x, this.dropout, this.dropoutKey), a), this.lambdaD);
    return tf.add(layer.base(x), tf.mul(linear(h, b), this.lambdaB));
  }

  /** diag(λ_b) B diag(λ_d) A in kernel layout: (A_k ⊙ λ_d) (B_k ⊙ λ_b) [k, d]. */
  delta(layer: LinearModule): T2 {
    const { a, b } = this.sliced(layer);
    return tf.matMul(tf.mul(a, this.lambdaD), tf.mul(b, this.lambdaB));
  }

  // The shared A and B are not the adapter's: the state saves them once and frees them.
  override dispose(): void {
    super.dispose();
    this.slices?.a.dispose();
    this.slices?.b.dispose();
  }
}

export const vera = defineMethod({
  name: 'vera',
  kind: 'delta',
  keys: ['r', 'dropout', 'seed', 'targets'],
  summary: 'VeRA (Kopiczko et al. 2024): W0 x + λ_b ⊙ B(λ_d ⊙ A dropout(x)), A, B shared, frozen, seeded',
  mergeable: true,
  identityAtInit: true,
  linearParams: (l, term) => ({ vera_lambda_b: [l.outFeatures], vera_lambda_d: [term.r ?? DEFAULT_RANK] }),
  createAdapter: (layer, ctx) => new VeraAdapter(layer, ctx),
});

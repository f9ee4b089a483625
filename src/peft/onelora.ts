// 1LoRA — "1LoRA: Summation Compression for Very Low-Rank Adaptation", Quercia et al.,
// arXiv 2503.08333, §3.2 eq. (3): ΔW = b 1ᵀ, so y = W0 x + b·(1ᵀx) with b ∈ R^d, b = 0 at init.
// Ablation B.2 (random compression): y = W0 x + b·(cᵀx) with c fixed, seeded (standard normal:
// the same per-feature second moment as the vector of ones).
//
// Memory (why it is one custom op): the backward needs only s = 1ᵀx per row (db = sᵀ g) and b
// (dx = g W0ᵀ + (g b) 1ᵀ); x is never saved, W0 is closed over so it gets no gradient.
import { tf } from '../backend/tf.js';
import { customOp, frozenTranspose, sumRows } from '../backend/linear.js';
import type { LinearModule } from '../nn/modules.js';
import { AdditiveAdapter } from './additive.js';
import { normalArray, uniqueName, zerosVar } from './init.js';
import { defineMethod, type BuildContext } from './types.js';

type T1 = tf.Tensor1D;
type T2 = tf.Tensor2D;

export interface OneLoraOptions {
  bias?: T1 | null;
  trainBias?: boolean;
  /** The random-compression vector [k]; absent: the sum 1ᵀx. */
  c?: T1 | null;
}

/**
 * y = x W + β + s bᵀ with s = x 1 (or x c) [N, 1], x [N, k], W [k, d] frozen, b [d] trainable.
 * Saves only s and b. Gradients: db = sᵀ g, dx = g Wᵀ + (g b) 1ᵀ (or (g b) cᵀ), dβ = Σ_rows g.
 */
export function oneLoraLinear(x: T2, w: T2, b: tf.Variable | T1, opts: OneLoraOptions = {}): T2 {
  const bias = opts.bias ?? null;
  const trainB = (opts.trainBias ?? false) && bias !== null;
  const c = opts.c ?? null;
  const inputs: tf.Tensor[] = trainB ? [x, b, bias as T1] : [x, b];
  return customOp<T2>(inputs, ([xi, bi], save) => {
    const xs = xi as T2;
    const bv = bi as T1;
    // [N, k] -> [N, 1]. Outer products are broadcast multiplies, never a matMul against a reshaped
    // b or c: wasm's XNNPACK caches the packed right operand by buffer id, and a reshape shares the
    // buffer, so the same vector used as [1, d] and [d, 1] would hit a stale packing.
    const s: T2 = c ? tf.sum(tf.mul(xs, c), 1, true) : tf.sum(xs, 1, true);
    let y: T2 = tf.add(tf.matMul(xs, w), tf.mul(s, bv)); // [N, d] + [N, 1] ⊙ [d]
    if (bias) y = tf.add(y, bias);
    save([s, bv]);
    return {
      value: y,
      gradFunc: (g, saved) => {
        const [ss, bs] = saved as [T2, T1];
        const gb: T2 = tf.sum(tf.mul(g, bs), 1, true); // g b: [N, d] -> [N, 1]
        const back = tf.matMul(g, frozenTranspose(w)); // [N, d]·[d, k] -> [N, k]
        const dx = tf.add(back, c ? tf.mul(gb, c) : gb); // + (g b) cᵀ, or (g b) 1ᵀ by broadcast
        const db = sumRows(tf.mul(g, ss)); // sᵀ g: [N, d] ⊙ [N, 1] summed over rows -> [d]
        return trainB ? [dx, db, sumRows(g)] : [dx, db];
      },
    };
  });
}

export class OneLoraAdapter extends AdditiveAdapter {
  readonly method: string;
  readonly b: tf.Variable<tf.Rank.R1>;
  /** The random compression vector (ablation), frozen; null for summation. */
  readonly c: tf.Variable<tf.Rank.R1> | null;

  constructor(layer: LinearModule, c: tf.Variable<tf.Rank.R1> | null) {
    super();
    this.method = c ? '1lora-random' : '1lora';
    this.b = this.trained('onelora_b', zerosVar([layer.outFeatures], `${layer.path}.onelora_b`) as tf.Variable<tf.Rank.R1>);
    this.c = c && this.saved('onelora_c', c);
  }

  forward(layer: LinearModule, x: T2): T2 {
    return oneLoraLinear(x, layer.weight, this.b, { bias: layer.bias, trainBias: layer.trainBias, c: this.c });
  }

  /** ΔW in kernel layout [k, d]: 1 bᵀ (or c bᵀ). */
  delta(layer: LinearModule): T2 {
    const k = layer.inFeatures;
    const col = this.c ? tf.reshape(this.c, [k, 1]) : tf.ones([k, 1]);
    return tf.mul(col, this.b) as T2; // [k, 1] ⊙ [d] -> [k, d]
  }
}

export const oneLora = defineMethod({
  name: '1lora',
  kind: 'delta',
  keys: ['targets'],
  summary: '1LoRA (Quercia et al. 2025): W0 x + b·(1ᵀx), b ∈ R^d zero-initialised',
  mergeable: true,
  identityAtInit: true,
  linearParams: (l) => ({ onelora_b: [l.outFeatures] }),
  createAdapter: (layer) => new OneLoraAdapter(layer, null),
});

export const oneLoraRandom = defineMethod({
  name: '1lora-random',
  kind: 'delta',
  keys: ['targets', 'seed'],
  summary: '1LoRA ablation B.2: W0 x + b·(cᵀx), c fixed, seeded N(0, 1)',
  mergeable: true,
  identityAtInit: true,
  linearParams: (l) => ({ onelora_b: [l.outFeatures] }),
  createAdapter: (layer, ctx: BuildContext) => {
    const c = tf.tidy(() => tf.variable(tf.tensor1d(normalArray(layer.inFeatures, ctx.seed, `${layer.path}.onelora_c`)), false, uniqueName(`${layer.path}.onelora_c`)));
    return new OneLoraAdapter(layer, c);
  },
});

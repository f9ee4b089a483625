// LoRA — "LoRA: Low-Rank Adaptation of Large Language Models", Hu et al., ICLR 2022 (arXiv
// 2106.09685): y = W0 x + s·B A x, A ∈ R^{r×k}, B ∈ R^{d×r}, s = α/r; rsLoRA (Kalajdzievski 2023,
// arXiv 2312.03732): s = α/√r. Init as HF PEFT: A = kaiming_uniform_(a=√5) = U(±1/√k), B = 0.
// `dropout` p is PEFT's lora_dropout: s·B A dropout(x), in training forwards only (src/nn/dropout.ts).
// Stored in kernel layout (A_k = Aᵀ [k, r], B_k = Bᵀ [r, d]) so the forward is x A_k B_k with the
// project's `matmul` primitive; the file holds PEFT's lora_A.weight [r, k] and lora_B.weight [d, r].
import { tf } from '../backend/tf.js';
import { matmul } from '../backend/linear.js';
import { adapterDropout, dropoutKey } from '../nn/dropout.js';
import type { LinearModule } from '../nn/modules.js';
import { AdditiveAdapter } from './additive.js';
import { seededMatrix, uniqueName, zerosVar } from './init.js';
import { DEFAULT_RANK, defaultAlpha, defineMethod, type BuildContext, type TermOptions } from './types.js';

type T2 = tf.Tensor2D;

function loraScale(term: TermOptions): number {
  const r = term.r ?? DEFAULT_RANK;
  const alpha = term.alpha ?? defaultAlpha(r);
  return term.rslora ? alpha / Math.sqrt(r) : alpha / r;
}

export class LoraAdapter extends AdditiveAdapter {
  readonly method: string = 'lora';
  readonly r: number;
  readonly scale: number;
  readonly dropout: number;
  private readonly dropoutKey: number;
  /** [k, r] = lora_A.weightᵀ */
  readonly A: tf.Variable<tf.Rank.R2>;
  /** [r, d] = lora_B.weightᵀ */
  readonly B: tf.Variable<tf.Rank.R2>;

  constructor(layer: LinearModule, ctx: BuildContext) {
    super();
    this.r = ctx.term.r ?? DEFAULT_RANK;
    this.scale = loraScale(ctx.term);
    this.dropout = ctx.term.dropout ?? 0;
    this.dropoutKey = dropoutKey(layer.path);
    const k = layer.inFeatures;
    const a = seededMatrix([this.r, k], 1 / Math.sqrt(k), ctx.seed, `${layer.path}.lora_A.weight`, true);
    this.A = this.trained('lora_A.weight', tf.variable(a, true, uniqueName(`${layer.path}.lora_A`)));
    a.dispose(); // the variable holds its own reference to the data
    this.B = this.trained('lora_B.weight', zerosVar([this.r, layer.outFeatures], `${layer.path}.lora_B`) as tf.Variable<tf.Rank.R2>);
  }

  /** s·(x A_k) B_k: [N, k]·[k, r] -> [N, r], scaled while it is small, ·[r, d] -> [N, d]. */
  loraDelta(x: T2): T2 {
    return matmul(tf.mul(matmul(x, this.A), this.scale), this.B);
  }

  /** The adapter branch's input: dropout(x) while training, x otherwise. */
  protected branchInput(x: T2): T2 {
    return adapterDropout(x, this.dropout, this.dropoutKey);
  }

  forward(layer: LinearModule, x: T2): T2 {
    return tf.add(layer.base(x), this.loraDelta(this.branchInput(x)));
  }

  /** s·A_k B_k: ΔW in kernel layout [k, d]. */
  delta(): T2 {
    return tf.mul(tf.matMul(this.A, this.B), this.scale);
  }
}

export const lora = defineMethod({
  name: 'lora',
  kind: 'delta',
  keys: ['r', 'alpha', 'dropout', 'rslora', 'seed', 'targets'],
  summary: 'LoRA (Hu et al. 2022): W0 x + s·BA dropout(x), s = α/r (rsLoRA α/√r); A U(±1/√k), B = 0',
  mergeable: true,
  identityAtInit: true,
  linearParams: (l, term) => {
    const r = term.r ?? DEFAULT_RANK;
    return { 'lora_A.weight': [r, l.inFeatures], 'lora_B.weight': [l.outFeatures, r] };
  },
  createAdapter: (layer, ctx) => new LoraAdapter(layer, ctx),
});

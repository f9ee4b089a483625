// DiffFit — "DiffFit: Unlocking Transferability of Large Diffusion Models via Simple
// Parameter-Efficient Fine-Tuning", Xie et al., ICCV 2023 (arXiv 2304.06648), as the 1LoRA paper
// uses it (Table 1): y = γ ⊙ (W0 x + β), γ ∈ R^d initialised to 1, plus the existing biases β and
// the normalization layers. `difffit-gamma` is γ alone (the paper's ablation grid, Table S11/S12).
// β here means the biases the model has: no zero bias is added (that is BitFit's job, and the
// paper's LLaMA-2 DiffFit count, Table S6, has no β term).
//
// Combinations with a delta method keep the paper's order: y = γ ⊙ (W0 x + δ(x) + β), e.g.
// `1lora+bitfit+difffit-gamma` is γ ⊙ (W0 x + b(1ᵀx) + β); merging folds δ first, then scales
// W and β by γ (unmerge divides by γ, so an entry of γ that reached exactly 0 cannot be undone).
import { tf } from '../backend/tf.js';
import type { LinearAdapter, LinearModule } from '../nn/modules.js';
import { trainBias } from './bitfit.js';
import { uniqueName } from './init.js';
import { defineMethod } from './types.js';

type T2 = tf.Tensor2D;

class GammaAdapter implements LinearAdapter {
  readonly method: string;
  readonly gamma: tf.Variable<tf.Rank.R1>;

  constructor(layer: LinearModule, readonly inner: LinearAdapter | null) {
    this.method = inner ? `${inner.method}+difffit-gamma` : 'difffit-gamma';
    this.gamma = tf.tidy(() => tf.variable(tf.ones([layer.outFeatures]), true, uniqueName(`${layer.path}.difffit_gamma`))) as tf.Variable<tf.Rank.R1>;
  }

  forward(layer: LinearModule, x: T2): T2 {
    const y = this.inner ? this.inner.forward(layer, x) : layer.base(x);
    return tf.mul(y, this.gamma); // [N, d] ⊙ [d]
  }

  trainable(): ReadonlyMap<string, tf.Variable> {
    return new Map([...(this.inner?.trainable() ?? []), ['difffit_gamma', this.gamma]]);
  }

  buffers(): ReadonlyMap<string, tf.Tensor> {
    return this.inner?.buffers() ?? new Map();
  }

  merge(layer: LinearModule): void {
    this.inner?.merge(layer);
    // Kernel layout [k, d]: γ scales the output columns.
    tf.tidy(() => {
      layer.weight.assign(tf.mul(layer.weight, this.gamma));
    });
    tf.tidy(() => {
      layer.bias?.assign(tf.mul(layer.bias as tf.Tensor1D, this.gamma));
    });
  }

  unmerge(layer: LinearModule): void {
    tf.tidy(() => {
      layer.weight.assign(tf.div(layer.weight, this.gamma));
    });
    tf.tidy(() => {
      layer.bias?.assign(tf.div(layer.bias as tf.Tensor1D, this.gamma));
    });
    this.inner?.unmerge(layer);
  }

  dispose(): void {
    this.gamma.dispose();
    this.inner?.dispose();
  }
}

export const difffitGamma = defineMethod({
  name: 'difffit-gamma',
  kind: 'gamma',
  keys: ['targets'],
  summary: 'DiffFit’s γ alone: γ ⊙ (W0 x + β), γ = 1 at init',
  mergeable: true,
  identityAtInit: true,
  linearParams: (l) => ({ difffit_gamma: [l.outFeatures] }),
  createAdapter: (layer, _ctx, inner) => new GammaAdapter(layer, inner),
});

export const difffit = defineMethod({
  name: 'difffit',
  kind: 'difffit',
  keys: ['targets'],
  summary: 'DiffFit (Xie et al. 2023): γ ⊙ (W0 x + β) with γ, the existing β and the norms trained',
  mergeable: true,
  identityAtInit: true,
  linearParams: (l) => {
    const p: Record<string, number[]> = { difffit_gamma: [l.outFeatures] };
    if (l.hasBias) p.bias = [l.outFeatures];
    return p;
  },
  createAdapter: (layer, _ctx, inner) => new GammaAdapter(layer, inner),
  selectLinear: (layer) => trainBias(layer, false),
  trainsNorms: true,
});

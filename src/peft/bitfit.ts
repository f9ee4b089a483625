// BitFit — "BitFit: Simple Parameter-efficient Fine-tuning for Transformer-based Masked
// Language-models", Ben Zaken et al., ACL 2022 (arXiv 2106.10199): y = W0 x + β with only β ∈ R^d
// trained. Where a layer has no bias (LLaMA), a zero bias is added, so BitFit on LLaMA-2-7B trains
// Σ d = 1.36 M parameters as in the 1LoRA paper's Table S6. A selection method: no adapter, the
// layer's own bias becomes trainable (its gradient comes from the fast linear primitive).
import { tf } from '../backend/tf.js';
import type { LinearModule } from '../nn/modules.js';
import { uniqueName } from './init.js';
import { defineMethod } from './types.js';

/** Makes the layer's bias trainable, creating a zero bias when `addMissing` and it has none. */
export function trainBias(layer: LinearModule, addMissing: boolean): ReadonlyMap<string, tf.Variable> {
  if (!layer.bias && addMissing) {
    layer.bias = tf.tidy(() => tf.variable(tf.zeros([layer.outFeatures]), true, uniqueName(`${layer.path}.bias`))) as tf.Variable<tf.Rank.R1>;
  }
  if (!layer.bias) return new Map();
  layer.trainBias = true;
  return new Map([['bias', layer.bias]]);
}

export const bitfit = defineMethod({
  name: 'bitfit',
  kind: 'bias',
  keys: ['targets'],
  summary: 'BitFit (Ben Zaken et al. 2022): only the biases β train; a zero bias is added where none',
  mergeable: true,
  identityAtInit: true,
  linearParams: (l) => ({ bias: [l.outFeatures] }),
  selectLinear: (layer) => trainBias(layer, true),
});

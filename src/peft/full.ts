// "all": full fine-tuning, the paper's upper baseline ("All" in Table 1: W0 x + β, norms,
// > k·d + d per layer). Every parameter of the model trains; linear layers set trainWeight and
// trainBias so the fast linear primitive keeps x and computes dW = xᵀ g.
import type { tf } from '../backend/tf.js';
import { defineMethod } from './types.js';

export const full = defineMethod({
  name: 'all',
  kind: 'all',
  keys: [],
  summary: 'full fine-tuning: every parameter trains',
  // Nothing to fold: the trained parameters are the model's own.
  mergeable: false,
  identityAtInit: true,
  linearParams: (l) => {
    const p: Record<string, number[]> = { weight: [l.outFeatures, l.inFeatures] };
    if (l.hasBias) p.bias = [l.outFeatures];
    return p;
  },
  selectLinear: (layer) => {
    layer.trainWeight = true;
    const out = new Map<string, tf.Variable>([['weight', layer.weight]]);
    if (layer.bias) {
      layer.trainBias = true;
      out.set('bias', layer.bias);
    }
    return out;
  },
  selectModel: (model) => model.parameters(),
  trainsNorms: true,
});

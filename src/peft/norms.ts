// "norms": only the normalization layers train (their weights and biases) — the component of
// DiffFit (Xie et al. 2023) the 1LoRA paper ablates on its own and with 1LoRA (arXiv 2503.08333,
// appendix B.1, Tables S11/S12: `1lora+norms` is its best MDE/ViT combination). A selection
// method: the model's own norm variables become trainable; tf's autodiff gives their gradients.
import { defineMethod } from './types.js';

export const norms = defineMethod({
  name: 'norms',
  kind: 'norms',
  keys: [],
  summary: 'normalization layers only (weights and biases), as in DiffFit and the paper’s ablations',
  // Nothing to fold: the trained parameters are the model's own.
  mergeable: false,
  identityAtInit: true,
  linearParams: () => ({}),
  trainsNorms: true,
});

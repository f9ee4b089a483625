// Merging an additive adapter is W0 ← W0 + ΔW and unmerging W0 ← W0 − ΔW, ΔW in kernel layout
// [in, out]. One place does it, inside tf.tidy, so the temporaries (and the tensor handle a
// Variable.assign keeps) are freed.
import { tf } from '../backend/tf.js';
import type { LinearModule } from '../nn/modules.js';

export function foldDelta(layer: LinearModule, sign: 1 | -1, delta: () => tf.Tensor2D): void {
  tf.tidy(() => {
    layer.weight.assign(sign > 0 ? tf.add(layer.weight, delta()) : tf.sub(layer.weight, delta()));
  });
}

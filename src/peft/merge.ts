// Merging adapters into the base weights for inference at no extra cost (1LoRA paper §3.2:
// "W_ft := W0 + ΔW", as done for LoRA). Each adapter folds its own ΔW (src/peft/*.ts); this file
// holds what works on a whole model: merge-and-unload for `onelora merge`, and the effective
// weight of any adapted layer measured through its forward (tests, the PCA ablation).
import { tf } from '../backend/tf.js';
import type { LinearModule } from '../nn/modules.js';
import type { PeftState } from './apply.js';

type T2 = tf.Tensor2D;

/**
 * Folds every adapter into W0 and β for good and detaches the adapters, leaving a plain model
 * (`onelora merge`). Returns the paths of layers that gained a bias (BitFit on a bias-free layer):
 * an exporter must write those biases although the original checkpoint had none.
 */
export function mergeAndUnload(state: PeftState): { addedBiases: string[] } {
  const addedBiases = [...state.addedBiases];
  state.unload();
  return { addedBiases };
}

/**
 * The layer's effective affine map measured through its current forward (adapted, merged or
 * plain): W_eff = f(I) − f(0) in kernel layout [k, d] and β_eff = f(0) [d]. Every method here is
 * affine in x, so this is exact; rows are pushed `chunk` at a time to bound memory.
 */
export function effectiveWeight(layer: LinearModule, chunk = 1024): { weight: T2; bias: tf.Tensor1D } {
  return tf.tidy(() => {
    const k = layer.inFeatures;
    const zero = layer.forward(tf.zeros([1, k]) as T2); // [1, d]
    const parts: T2[] = [];
    for (let r0 = 0; r0 < k; r0 += chunk) {
      const rows = Math.min(chunk, k - r0);
      const eye = tf.slice(tf.eye(k), [r0, 0], [rows, k]) as T2; // rows of I_k
      parts.push(tf.sub(layer.forward(eye), zero));
    }
    return { weight: tf.concat(parts, 0) as T2, bias: tf.reshape(zero, [-1]) as tf.Tensor1D };
  });
}

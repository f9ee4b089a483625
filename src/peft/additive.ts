// The additive-adapter base, as HF PEFT's `BaseTunerLayer`: an adapter whose output is the base
// layer plus a term linear in x, y = x W0 + β + δ(x) with δ(x) = x ΔW. A method gives `forward`
// (its fast path) and `delta` (ΔW in kernel layout [in, out]); the base merges (W0 ← W0 + ΔW),
// unmerges (W0 ← W0 − ΔW), lists the tensors saved in the adapter file and frees them. A method
// registers each tensor once, under its file name relative to the module (`lora_A.weight`).
import { tf } from '../backend/tf.js';
import type { LinearAdapter, LinearModule } from '../nn/modules.js';

type T2 = tf.Tensor2D;

export abstract class AdditiveAdapter implements LinearAdapter {
  abstract readonly method: string;
  private readonly params = new Map<string, tf.Variable>();
  private readonly frozen = new Map<string, tf.Tensor>();
  private readonly owned: tf.Tensor[] = [];

  abstract forward(layer: LinearModule, x: T2): T2;

  /** ΔW in kernel layout [in, out]; called inside a tidy, so its temporaries are freed. */
  abstract delta(layer: LinearModule): T2;

  /** Registers a trainable tensor (file order is registration order). */
  protected trained<V extends tf.Variable>(name: string, v: V): V {
    this.params.set(name, v);
    return v;
  }

  /** Registers a frozen tensor the adapter file holds too (1LoRA-random's `onelora_c`). */
  protected saved<T extends tf.Tensor>(name: string, t: T): T {
    this.frozen.set(name, t);
    return t;
  }

  /** Registers a frozen tensor that is the adapter's to free but is not saved (MoRA's RoPE tables). */
  protected owns<T extends tf.Tensor>(t: T): T {
    this.owned.push(t);
    return t;
  }

  trainable(): ReadonlyMap<string, tf.Variable> {
    return this.params;
  }

  buffers(): ReadonlyMap<string, tf.Tensor> {
    return this.frozen;
  }

  merge(layer: LinearModule): void {
    this.fold(layer, 1);
  }

  unmerge(layer: LinearModule): void {
    this.fold(layer, -1);
  }

  dispose(): void {
    for (const t of [...this.params.values(), ...this.frozen.values(), ...this.owned]) t.dispose();
  }

  /** Inside tf.tidy: the temporaries and the handle a Variable.assign keeps are freed. */
  private fold(layer: LinearModule, sign: 1 | -1): void {
    tf.tidy(() => {
      const d = this.delta(layer);
      layer.weight.assign(sign > 0 ? tf.add(layer.weight, d) : tf.sub(layer.weight, d));
    });
  }
}

// The trainable tensors as one fused Float32 buffer: the layout all-reduce, clipping, AdamW and the
// optimizer checkpoint share. Order = sorted keys, so every rank builds the same layout.
import { tf } from '../backend/tf.js';

export interface Slot {
  readonly key: string;
  readonly variable: tf.Variable;
  readonly offset: number;
  readonly size: number;
}

export class FusedParams {
  readonly slots: readonly Slot[];
  readonly size: number;
  /** The master copy of the trainable parameters; variables are refreshed from it after each update. */
  readonly values: Float32Array;

  constructor(trainable: ReadonlyMap<string, tf.Variable>) {
    let offset = 0;
    const slots: Slot[] = [];
    for (const key of [...trainable.keys()].sort()) {
      const variable = trainable.get(key) as tf.Variable;
      // tf.variableGrads silently drops variables whose `trainable` flag is off.
      variable.trainable = true;
      slots.push({ key, variable, offset, size: variable.size });
      offset += variable.size;
    }
    this.slots = slots;
    this.size = offset;
    this.values = new Float32Array(offset);
    this.pull();
  }

  /** Reads the variables into the master copy (after init, load or resume). */
  pull(): void {
    for (const s of this.slots) this.values.set(s.variable.dataSync() as Float32Array, s.offset);
  }

  /** Writes the master copy back into the variables. */
  push(): void {
    for (const s of this.slots) {
      const t = tf.tensor(this.values.subarray(s.offset, s.offset + s.size), s.variable.shape, 'float32');
      s.variable.assign(t);
      t.dispose();
    }
  }

  /** Adds `grads` (by variable name, as tf.variableGrads returns them) into `into`. */
  accumulate(grads: tf.NamedTensorMap, into: Float32Array): void {
    for (const s of this.slots) {
      const g = grads[s.variable.name];
      if (!g) continue; // no path from the loss to this tensor in this micro-batch: gradient 0
      const data = g.dataSync() as Float32Array;
      for (let i = 0; i < s.size; i++) into[s.offset + i] = (into[s.offset + i] as number) + (data[i] as number);
    }
  }

  /** 1 where weight decay applies: not to biases and normalisation weights (as HF Trainer does). */
  decayMask(isNoDecay: (key: string) => boolean): Uint8Array {
    const mask = new Uint8Array(this.size);
    for (const s of this.slots) if (!isNoDecay(s.key)) mask.fill(1, s.offset, s.offset + s.size);
    return mask;
  }

  /** A view of one slot (for checkpoints and tests). */
  view(buf: Float32Array, key: string): Float32Array {
    const s = this.slots.find((x) => x.key === key);
    if (!s) throw new Error(`no trainable tensor '${key}'`);
    return buf.subarray(s.offset, s.offset + s.size);
  }
}

// The trainable tensors as one fused Float32 buffer: the layout all-reduce, clipping, AdamW and the
// optimizer checkpoint share. Order = sorted keys, so every rank builds the same layout.
import { canReadSync, readAll } from '../backend/read.js';
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
  /** `values` still has to be read from the variables (a backend without synchronous reads). */
  private pending = false;

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
    // wasm/cpu/tensorflow read here; a GPU backend reads in ready(), which computeGrads awaits.
    if (canReadSync()) for (const s of this.slots) this.values.set(s.variable.dataSync() as Float32Array, s.offset);
    else this.pending = true;
  }

  /** Reads the variables into the master copy when the constructor could not (one download). */
  async ready(): Promise<void> {
    if (!this.pending) return;
    const [all] = await readAll([this.flatten((s) => s.variable)]);
    this.values.set(all as Float32Array);
    this.pending = false;
  }

  /** The master copy is authoritative from here (a restore wrote it): nothing left to read. */
  markWritten(): void {
    this.pending = false;
  }

  /** Every slot's tensor (`pick`, or zeros where it gives none) as one flat [size] tensor, in slot order. */
  flatten(pick: (s: Slot) => tf.Tensor | undefined): tf.Tensor1D {
    return tf.tidy(() => {
      const parts = this.slots.map((s) => tf.reshape(pick(s) ?? tf.zeros([s.size]), [-1]));
      return (parts.length ? tf.concat(parts) : tf.zeros([0])) as tf.Tensor1D;
    });
  }

  /** Writes the master copy back into the variables. */
  push(): void {
    for (const s of this.slots) {
      const t = tf.tensor(this.values.subarray(s.offset, s.offset + s.size), s.variable.shape, 'float32');
      s.variable.assign(t);
      t.dispose();
    }
  }

  /**
   * `grads` (by variable name, as tf.variableGrads returns them) as one fused [size] tensor; a
   * tensor with no path from the loss in this micro-batch gets gradient 0.
   */
  fuse(grads: tf.NamedTensorMap): tf.Tensor1D {
    return this.flatten((s) => grads[s.variable.name]);
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

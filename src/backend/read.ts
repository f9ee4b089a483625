// Reading tensors back to the host. A GPU backend cannot read synchronously (tfjs-webgpu's
// dataSync needs OffscreenCanvas, which Node lacks) and every read is a host round-trip, so reads
// are `await data()`, and several tensors are read as one: flattened and concatenated on the
// device, downloaded once, split on the host.
import { tf } from './tf.js';

/** The active backend can answer dataSync() (wasm, cpu, tensorflow): the place for sync-only fast paths. */
export function canReadSync(): boolean {
  return tf.getBackend() !== 'webgpu';
}

/** The float32 values of each tensor, in one download; the inputs are not disposed. */
export async function readAll(ts: readonly tf.Tensor[]): Promise<Float32Array[]> {
  if (ts.length === 0) return [];
  if (ts.length === 1) return [Float32Array.from((await (ts[0] as tf.Tensor).data()) as Float32Array)];
  const joined = tf.tidy(() => tf.concat(ts.map((t) => tf.reshape(tf.cast(t, 'float32'), [-1]))));
  const all = (await joined.data()) as Float32Array;
  joined.dispose();
  const out: Float32Array[] = [];
  let offset = 0;
  for (const t of ts) {
    out.push(all.slice(offset, offset + t.size));
    offset += t.size;
  }
  return out;
}

/** One tensor's values (a fresh copy the caller may keep); `dispose`: the tensor is a temporary, freed after the read. */
export async function readFloats(t: tf.Tensor, dispose = false): Promise<Float32Array> {
  try {
    return (await readAll([t]))[0] as Float32Array;
  } finally {
    if (dispose) t.dispose();
  }
}

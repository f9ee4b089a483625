// Seeded initialisation of adapter tensors (docs/architecture.md#contracts: every adapter tensor is seeded).
// Every tensor draws from its own stream, keyed by (the caller's seed, the tensor's file key), so
// the same spec and seed give byte-identical adapter files whatever order the layers are built in,
// and on every backend (the numbers are generated here, not by the backend's RNG).
import { tf } from '../backend/tf.js';
import { Rng } from '../nn/rng.js';

/** U(−bound, bound) of `shape`, drawn in row-major order of `shape`. */
export function uniformArray(n: number, bound: number, seed: number, key: string): Float32Array {
  const rng = Rng.named(seed, key);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * rng.float() - 1) * bound;
  return out;
}

/** Standard normal draws (Box–Muller). */
export function normalArray(n: number, seed: number, key: string): Float32Array {
  const rng = Rng.named(seed, key);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - rng.float();
    const v = rng.float();
    const rad = Math.sqrt(-2 * Math.log(u));
    out[i] = rad * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = rad * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/**
 * A tensor drawn in the file's (PyTorch) layout `fileShape` and returned transposed to kernel
 * layout when `kernel` is set, so the bytes saved do not depend on how onelora stores it.
 */
export function seededMatrix(fileShape: [number, number], bound: number, seed: number, key: string, kernel: boolean): tf.Tensor2D {
  const data = uniformArray(fileShape[0] * fileShape[1], bound, seed, key);
  return tf.tidy(() => {
    const t = tf.tensor2d(data, fileShape);
    return kernel ? tf.transpose(t) : t;
  });
}

export function zerosVar(shape: number[], name?: string): tf.Variable {
  return tf.tidy(() => tf.variable(tf.zeros(shape), true, name ? uniqueName(name) : undefined));
}

let counter = 0;
/** tfjs variable names are global to the engine; a counter keeps two models' adapters apart. */
export function uniqueName(name: string): string {
  counter += 1;
  return `${name}#${counter}`;
}

// Adapter dropout: PEFT's `lora_dropout` / `vera_dropout`, an nn.Dropout(p) on the adapter
// branch's input (`lora_B(lora_A(dropout(x)))`), active in training forwards only, kept entries
// scaled by 1/(1−p). The masks are not drawn from a backend RNG but are a function of where each
// entry sits in the run — (run seed, epoch, dataset index of the sample, module path, position
// within the sample, feature) — so a sample gets the same mask whichever rank, micro-batch or
// padding width it lands in, and a resumed run the same masks as an uninterrupted one
// (docs/architecture.md#contracts). The trainer sets the context around each training forward;
// without one (evaluation, generation, merge) dropout is the identity.
import { tf } from '../backend/tf.js';
import { mixSeed, nameKeys, Rng } from './rng.js';

type T2 = tf.Tensor2D;

/** Where the rows of the current training forward come from (src/train/task.ts BatchContext). */
export interface DropoutContext {
  readonly seed: number;
  readonly epoch: number;
  /** Dataset indices of the micro-batch's samples; the rows of an adapted x are sample-major. */
  readonly sampleIds: readonly number[];
}

let current: DropoutContext | null = null;

/** Runs `fn` (a training forward and its backward) with adapter dropout drawing from `ctx`. */
export function withDropoutContext<T>(ctx: DropoutContext | null, fn: () => T): T {
  const prev = current;
  current = ctx;
  try {
    return fn();
  } finally {
    current = prev;
  }
}

/** A module's mask-stream key, computed once per adapter from its path. */
export function dropoutKey(path: string): number {
  return mixSeed(...nameKeys(path));
}

/**
 * The keep mask scaled by 1/(1−p), [N, k] with N = samples × rows per sample: sample s's stream is
 * mulberry32 at mixSeed(seed, epoch, id_s, key), drawn row by row, so row t of a sample always
 * gets draws t·k … t·k + k − 1 whatever the padded length. An entry is kept when its draw ≥ p.
 */
export function dropoutMask(ctx: DropoutContext, n: number, k: number, p: number, key: number): Float32Array {
  // No sample ids (a benchmark's synthetic batch): the rows count as one sample, id 0.
  const b = Math.max(1, ctx.sampleIds.length);
  if (n % b !== 0) throw new Error(`adapter dropout: ${n} rows do not split over ${b} samples`);
  const perSample = (n / b) * k;
  const keep = 1 / (1 - p);
  const mask = new Float32Array(n * k);
  for (let s = 0; s < b; s++) {
    const rng = Rng.from(ctx.seed, ctx.epoch, ctx.sampleIds[s] ?? 0, key);
    const off = s * perSample;
    for (let i = 0; i < perSample; i++) mask[off + i] = rng.float() >= p ? keep : 0;
  }
  return mask;
}

/** dropout(x) for x [N, k]: x itself when p is 0 or outside a training forward. */
export function adapterDropout(x: T2, p: number, key: number): T2 {
  if (p <= 0 || !current) return x;
  const [n, k] = x.shape;
  return tf.mul(x, tf.tensor2d(dropoutMask(current, n, k, p, key), [n, k]));
}

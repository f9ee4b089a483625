// The project's linear and matmul primitives, written with tf.customGrad so that forward and
// backward issue only plain 2-D matMul(a, b) kernels.
//
// Why (docs/architecture.md#backends, measured in `onelora bench kernels`): on tfjs-wasm a 2-D matMul(a, b) runs at
// ~13-23 GFLOP/s, but the transposeA/transposeB flags and rank > 2 operands fall to ~1-2.5 GFLOP/s,
// and tfjs's built-in MatMul gradient uses exactly those flags. Here every transpose is an explicit
// tf.transpose of the smaller operand (or a cached transposed copy of a frozen weight) followed by a
// plain matMul. A frozen weight is closed over instead of being an input of the custom op, so the
// tape never asks for its gradient and nothing of x is kept unless a trainable weight needs it.
import { tf } from './select.js';

type T2 = tf.Tensor2D;
type T1 = tf.Tensor1D;
type Save = (ts: tf.Tensor[]) => void;

/**
 * tf.customGrad with a typed signature: `fn(inputs, save)` returns the value and its gradient
 * function, which returns one gradient per input. Tensors the forward reads but that are not in
 * `inputs` (frozen weights) are invisible to the tape: they get no gradient and are not retained.
 */
export function customOp<R extends tf.Tensor>(
  inputs: tf.Tensor[],
  fn: (xs: tf.Tensor[], save: Save) => { value: R; gradFunc: (dy: R, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] },
): R {
  type Custom = Parameters<typeof tf.customGrad>[0];
  const f = tf.customGrad(((...args: (tf.Tensor | Save)[]) => {
    const save = args[args.length - 1] as Save;
    const r = fn(args.slice(0, -1) as tf.Tensor[], save);
    // tfjs runs a custom gradient outside any tidy and frees nothing until the whole backward
    // ends, so every temporary of every gradFunc stayed alive to the end: tidy keeps only the grads.
    return { value: r.value, gradFunc: (dy: R, saved: tf.Tensor[]) => tf.tidy(() => r.gradFunc(dy, saved)) };
  }) as unknown as Custom);
  return f(...inputs) as R;
}

/** Bytes of transposed frozen weights kept for the backward pass (ONELORA_TRANSPOSE_CACHE_MB). */
const cacheCapBytes = Number(process.env.ONELORA_TRANSPOSE_CACHE_MB ?? 256) * 2 ** 20;
let cachedBytes = 0;
// Keyed by the weight's dataId: Variable.assign() (merge/unmerge, loading) swaps the dataId, so a
// changed weight can never hit a stale transpose. Entries whose weight is gone are swept.
const transposeCache = new Map<object, { source: T2; transposed: T2 }>();

function dataIdOf(t: tf.Tensor): object {
  return (t as unknown as { dataId: object }).dataId;
}

function sweep(all: boolean): void {
  for (const [key, e] of transposeCache) {
    if (all || e.source.isDisposed || dataIdOf(e.source) !== key) {
      cachedBytes -= e.transposed.size * 4;
      e.transposed.dispose();
      transposeCache.delete(key);
    }
  }
}

/**
 * Wᵀ for a frozen weight: from the cache when it fits under the cap (small models), else computed
 * on the fly (a 7B model must not be held twice; the transpose costs O(k·d) against the O(N·k·d)
 * matmul it feeds).
 */
export function frozenTranspose(w: T2): T2 {
  const key = dataIdOf(w);
  const hit = transposeCache.get(key);
  if (hit && !hit.source.isDisposed) return hit.transposed;
  const bytes = w.size * 4;
  if (cachedBytes + bytes > cacheCapBytes) sweep(false);
  if (cachedBytes + bytes > cacheCapBytes) return tf.transpose(w);
  const transposed = tf.keep(tf.tidy(() => tf.transpose(w)));
  transposeCache.set(key, { source: w, transposed });
  cachedBytes += bytes;
  return transposed;
}

/** Frees every cached transpose (a model was disposed, or tests want a clean slate). */
export function clearTransposeCache(): void {
  sweep(true);
}

export interface LinearOptions {
  /** Bias [out]; trainable when it is a trainable variable and `trainBias` is set. */
  bias?: T1 | null;
  /** The weight gets a gradient (full fine-tuning): then x must be kept for dW = xᵀ g. */
  trainWeight?: boolean;
  trainBias?: boolean;
}

/**
 * y = x W + bias with x [N, in] and W in kernel layout [in, out] (onelora stores linear weights
 * transposed from Hugging Face's [out, in], so the forward is one plain matMul).
 * Frozen W: backward dx = g Wᵀ only; x is not retained. Trainable W: dW = xᵀ g, x is retained.
 */
export function linear(x: T2, w: T2, opts: LinearOptions = {}): T2 {
  const bias = opts.bias ?? null;
  const trainW = opts.trainWeight ?? false;
  const trainB = (opts.trainBias ?? false) && bias !== null;
  if (!trainW && !trainB) {
    return customOp<T2>([x], ([xi]) => {
      const y: T2 = bias ? tf.add(tf.matMul(xi as T2, w), bias) : tf.matMul(xi as T2, w);
      // [N, out] · [out, in] -> [N, in]
      return { value: y, gradFunc: (dy) => tf.matMul(dy, frozenTranspose(w)) };
    });
  }
  const inputs: tf.Tensor[] = [x];
  if (trainW) inputs.push(w);
  if (trainB) inputs.push(bias as T1);
  return customOp<T2>(inputs, ([xi], save) => {
    const y: T2 = bias ? tf.add(tf.matMul(xi as T2, w), bias) : tf.matMul(xi as T2, w);
    if (trainW) save([xi as T2]);
    return {
      value: y,
      gradFunc: (g, saved) => {
        const wT = trainW ? tf.transpose(w) : frozenTranspose(w);
        const grads: tf.Tensor[] = [tf.matMul(g, wT)];
        if (trainW) grads.push(tf.matMul(tf.transpose(saved[0] as T2), g)); // [in, N] · [N, out]
        if (trainB) grads.push(sumRows(g));
        return grads;
      },
    };
  });
}

/**
 * a [M, K] · b [K, N] where both may need gradients (LoRA's A and B, attention projections):
 * da = g bᵀ, db = aᵀ g with explicit transposes of the operands.
 */
export function matmul(a: T2, b: T2): T2 {
  return customOp<T2>([a, b], ([ai, bi], save) => {
    save([ai as T2, bi as T2]);
    return {
      value: tf.matMul(ai as T2, bi as T2),
      gradFunc: (dy, saved) => {
        const [sa, sb] = saved as [T2, T2];
        return [tf.matMul(dy, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy)];
      },
    };
  });
}

/**
 * Σ over rows of g [N, d] -> [d]. tfjs-wasm's Sum over axis 0 of [1024, 256-688] measured 2.6-6.6
 * ms, 1ᵀ g as a matMul 0.8-2.1 ms (XNNPACK packs g first), and two reductions over a [N/f, f, d]
 * view (f the divisor of N nearest √N) 0.25-0.85 ms.
 */
export function sumRows(g: T2): T1 {
  const [n, d] = g.shape;
  let f = Math.floor(Math.sqrt(n));
  while (n % f !== 0) f--;
  if (f === 1) return tf.sum(g, 0);
  return tf.sum(tf.sum(g.reshape([n / f, f, d]), 1), 0); // [N/f, f, d] -> [N/f, d] -> [d]
}

/** Below this many multiply-adds per group the batched kernel's speed does not matter (generation's 1-token steps). */
const GROUPED_MIN_MACS = 65536;

/**
 * [G, M, K] · [G, K, N] -> [G, M, N]. On wasm, as G plain 2-D matMuls (~10× the batched kernel's
 * ~1.5-2.5 GFLOP/s at attention sizes). The operands are split through one dataSync each and
 * tf.tensor per group: tfjs-wasm's Slice/Unpack read back the whole input for every slice (7 to
 * 400 ms per split, measured), and each group is a fresh tensor, so XNNPACK's packed-operand cache
 * (keyed by buffer id) never sees a reshaped alias. Other backends use their batched kernel.
 */
function groupedMatMul(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  const [g, m, k] = a.shape;
  const n = b.shape[2];
  if (tf.getBackend() !== 'wasm' || g === 1 || m * k * n < GROUPED_MIN_MACS) return tf.matMul(a, b);
  const av = a.dataSync() as Float32Array;
  const bv = b.dataSync() as Float32Array;
  const outs: T2[] = [];
  for (let i = 0; i < g; i++) {
    const ai = tf.tensor2d(av.subarray(i * m * k, (i + 1) * m * k), [m, k]);
    const bi = tf.tensor2d(bv.subarray(i * k * n, (i + 1) * k * n), [k, n]);
    outs.push(tf.matMul(ai, bi)); // [M, K] · [K, N]
    tf.dispose([ai, bi]);
  }
  const out = tf.concat(outs, 0); // G × [M, N] -> [G·M, N]
  tf.dispose(outs);
  return out.reshape([g, m, n]);
}

/**
 * Batched matmul for attention, [G, M, K] · [G, K, N] -> [G, M, N], both operands differentiable:
 * da = g bᵀ, db = aᵀ g, each a grouped product after one rank-3 transpose (`groupedMatMul`).
 */
export function bmm(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  return customOp<tf.Tensor3D>([a, b], ([ai, bi], save) => {
    save([ai as tf.Tensor3D, bi as tf.Tensor3D]);
    return {
      value: groupedMatMul(ai as tf.Tensor3D, bi as tf.Tensor3D),
      gradFunc: (g, saved) => {
        const [sa, sb] = saved as [tf.Tensor3D, tf.Tensor3D];
        const t = (x: tf.Tensor3D): tf.Tensor3D => tf.transpose(x, [0, 2, 1]); // [G, R, C] -> [G, C, R]
        return [groupedMatMul(g, t(sb)), groupedMatMul(t(sa), g)];
      },
    };
  });
}

/**
 * Gradient checkpointing for one sub-graph: the forward keeps only `inputs`, and the backward runs
 * `f` again under tf.grads. For adapters whose intermediates are many and large but cheap to
 * recompute (MoRA 6's padded, rotated, blocked copies of x): tfjs otherwise keeps every one of
 * them until the whole backward ends.
 */
export function recomputed<R extends tf.Tensor>(inputs: tf.Tensor[], f: (...xs: tf.Tensor[]) => R): R {
  return customOp<R>(inputs, (xs, save) => {
    save(xs);
    return {
      value: f(...xs),
      gradFunc: (dy, saved) => {
        // A nested tf.grads at gradient depth 0 starts a fresh tape and, when it ends, sets the
        // engine's active tape to null, which the outer backward still walks afterwards: keep it.
        const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
        const outer = state.activeTape;
        try {
          return tf.grads((...a: tf.Tensor[]) => f(...a))(saved, dy);
        } finally {
          state.activeTape = outer;
        }
      },
    };
  });
}

// `onelora bench kernels`: the figures behind the kernel choices in src/backend/linear.ts.
// Medians over repeated runs after warm-up; printed, never asserted (machines are shared and noisy).
import { tf } from '../backend/tf.js';
import { bmm, linear } from '../backend/linear.js';

export interface KernelBench {
  backend: string;
  matmul_gflops: number;
  linear_fwd_bwd_gflops: number;
  linear_fwd_bwd_vs_matmul: number;
  builtin_fwd_bwd_gflops: number;
  builtin_fwd_bwd_vs_matmul: number;
  attention: {
    shape: string;
    batched_transposeB_gflops: number;
    plain_loop_gflops: number;
    bmm_fwd_bwd_gflops: number;
    builtin_batched_fwd_bwd_gflops: number;
  };
}

/** The median of `xs` (the upper one of an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
}

/** Runs `fn` in a tidy and reads its results back (so the work really happens, on a GPU too). */
async function runRead(fn: () => tf.Tensor | tf.Tensor[]): Promise<void> {
  const out = tf.tidy(fn);
  const ts = Array.isArray(out) ? out : [out];
  await Promise.all(ts.map((t) => t.data()));
  tf.dispose(ts);
}

/** Median seconds of `fn`, its results read back. */
async function medianSeconds(fn: () => tf.Tensor | tf.Tensor[], reps = 7, warmup = 2): Promise<number> {
  for (let i = 0; i < warmup; i++) await runRead(fn);
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await runRead(fn);
    times.push((performance.now() - t0) / 1000);
  }
  return median(times);
}

const round = (v: number) => Math.round(v * 100) / 100;

export async function benchKernels(opts: { n?: number; k?: number; d?: number; reps?: number } = {}): Promise<KernelBench> {
  const n = opts.n ?? 1024;
  const k = opts.k ?? 256;
  const d = opts.d ?? 688;
  const reps = opts.reps ?? 7;
  const x = tf.randomNormal([n, k], 0, 1, 'float32', 1) as tf.Tensor2D;
  const w = tf.randomNormal([k, d], 0, 0.05, 'float32', 2) as tf.Tensor2D;
  const g = tf.randomNormal([n, d], 0, 1, 'float32', 3) as tf.Tensor2D;
  const flops = 2 * n * k * d;

  const mm = await medianSeconds(() => tf.matMul(x, w), reps);
  // Forward + backward w.r.t. x with a frozen W: 2 matmuls' worth of flops.
  const ours = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(linear(xi as tf.Tensor2D, w), g)));
  const lin = await medianSeconds(() => ours(x), reps);
  const builtin = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(tf.matMul(xi as tf.Tensor2D, w), g)));
  const bi = await medianSeconds(() => builtin(x), reps);

  // Attention: B=8, H=4, T=128, head 64 (the bench-step model), scores = q kᵀ.
  const [B, H, T, hd] = [8, 4, 128, 64];
  const q = tf.randomNormal([B * H, T, hd], 0, 1, 'float32', 4) as tf.Tensor3D;
  const kk = tf.randomNormal([B * H, T, hd], 0, 1, 'float32', 5) as tf.Tensor3D;
  const gs = tf.randomNormal([B * H, T, T], 0, 1, 'float32', 6) as tf.Tensor3D;
  const af = 2 * B * H * T * T * hd;
  const batched = await medianSeconds(() => tf.matMul(q, kk, false, true), reps);
  const loop = await medianSeconds(() => bmm(q, tf.transpose(kk, [0, 2, 1])), reps);
  const bmmGrad = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(bmm(a as tf.Tensor3D, tf.transpose(b, [0, 2, 1]) as tf.Tensor3D), gs)));
  const bmmFB = await medianSeconds(() => bmmGrad([q, kk]), reps);
  const builtinAttn = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.matMul(a, b, false, true), gs)));
  const biAttn = await medianSeconds(() => builtinAttn([q, kk]), reps);
  tf.dispose([x, w, g, q, kk, gs]);

  const matmulG = flops / mm / 1e9;
  const linG = (2 * flops) / lin / 1e9;
  const biG = (2 * flops) / bi / 1e9;
  return {
    backend: tf.getBackend(),
    matmul_gflops: round(matmulG),
    linear_fwd_bwd_gflops: round(linG),
    linear_fwd_bwd_vs_matmul: round(linG / matmulG),
    builtin_fwd_bwd_gflops: round(biG),
    builtin_fwd_bwd_vs_matmul: round(biG / matmulG),
    attention: {
      shape: `q,k [${B}x${H}, ${T}, ${hd}]`,
      batched_transposeB_gflops: round(af / batched / 1e9),
      plain_loop_gflops: round(af / loop / 1e9),
      bmm_fwd_bwd_gflops: round((3 * af) / bmmFB / 1e9),
      builtin_batched_fwd_bwd_gflops: round((3 * af) / biAttn / 1e9),
    },
  };
}

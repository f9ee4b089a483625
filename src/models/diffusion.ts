// Gaussian diffusion as DiT trains and samples it (facebookresearch/DiT diffusion/, after Nichol &
// Dhariwal, "Improved Denoising Diffusion Probabilistic Models", 2021):
//   linear β schedule over 1000 steps (β from 1e-4 to 0.02), q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I);
//   loss = ‖ε − ε_θ‖² (mean over C, H, W) + L_vlb, where the model's second half of channels v
//   gives log σ² = ((v + 1)/2)·log β_t + (1 − (v + 1)/2)·log β̃_t (LEARNED_RANGE), and L_vlb is the
//   KL of the true posterior to p_θ in bits (the discretized Gaussian decoder NLL at t = 0), with a
//   stop-gradient on ε_θ so that only the variance learns from it;
//   sampling: DDPM ancestral steps or DDIM (η), over a respaced subset of the 1000 steps, with
//   classifier-free guidance (DitModel.forwardWithCfg).
// Schedules are float64 on the host; per-sample coefficients enter the graph as [B, 1, 1, 1] tensors.
import { tf } from '../backend/tf.js';
import { customOp } from '../backend/linear.js';
import { Rng } from '../nn/rng.js';
import { UserError } from '../errors.js';
import type { DitModel } from './dit.js';

type T1 = tf.Tensor1D;
type T4 = tf.Tensor4D;

/** n standard normal draws × std (Box–Muller on the seeded stream): identical on every backend and worker. */
export function gaussian(rng: Rng, n: number, std = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rng.float())) * std;
    const a = 2 * Math.PI * rng.float();
    out[i] = r * Math.cos(a);
    if (i + 1 < n) out[i + 1] = r * Math.sin(a);
  }
  return out;
}

export interface DiffusionSchedule {
  /** Steps of this (possibly respaced) chain. */
  readonly numTimesteps: number;
  /** Chain index -> the timestep the model was trained on (identity for the full schedule). */
  readonly timestepMap: Int32Array;
  readonly betas: Float64Array;
  readonly alphasCumprod: Float64Array;
  readonly alphasCumprodPrev: Float64Array;
  /** log β̃_t with β̃_0 replaced by β̃_1 (β̃_0 = 0). */
  readonly posteriorLogVarianceClipped: Float64Array;
  readonly posteriorMeanCoef1: Float64Array;
  readonly posteriorMeanCoef2: Float64Array;
}

function scheduleFromBetas(betas: Float64Array, timestepMap: Int32Array): DiffusionSchedule {
  const T = betas.length;
  const acp = new Float64Array(T);
  const prev = new Float64Array(T);
  const logVar = new Float64Array(T);
  const c1 = new Float64Array(T);
  const c2 = new Float64Array(T);
  const postVar = new Float64Array(T);
  let run = 1;
  for (let t = 0; t < T; t++) {
    prev[t] = run;
    run *= 1 - betas[t]!;
    acp[t] = run;
    postVar[t] = (betas[t]! * (1 - prev[t]!)) / (1 - acp[t]!);
    c1[t] = (betas[t]! * Math.sqrt(prev[t]!)) / (1 - acp[t]!);
    c2[t] = ((1 - prev[t]!) * Math.sqrt(1 - betas[t]!)) / (1 - acp[t]!);
  }
  for (let t = 0; t < T; t++) logVar[t] = Math.log(t === 0 && T > 1 ? postVar[1]! : postVar[t]!);
  return { numTimesteps: T, timestepMap, betas, alphasCumprod: acp, alphasCumprodPrev: prev, posteriorLogVarianceClipped: logVar, posteriorMeanCoef1: c1, posteriorMeanCoef2: c2 };
}

/** DiT's schedule: β linear from 1e-4 to 0.02 (scaled by 1000/T) over T steps. */
export function linearSchedule(T = 1000): DiffusionSchedule {
  const scale = 1000 / T;
  const lo = scale * 1e-4;
  const hi = scale * 0.02;
  const betas = Float64Array.from({ length: T }, (_, i) => (T === 1 ? lo : lo + ((hi - lo) * i) / (T - 1)));
  return scheduleFromBetas(betas, Int32Array.from({ length: T }, (_, i) => i));
}

/** Python's round(): halves go to the even neighbour (space_timesteps relies on it). */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

/**
 * `steps` evenly strided timesteps of the base chain (DiT's space_timesteps with one section) and
 * the β that keep their ᾱ: β_i = 1 − ᾱ_{t_i} / ᾱ_{t_{i−1}} (SpacedDiffusion).
 */
export function respace(base: DiffusionSchedule, steps: number): DiffusionSchedule {
  const T = base.numTimesteps;
  if (!Number.isInteger(steps) || steps < 1 || steps > T) throw new UserError(`--steps must be an integer in [1, ${T}], got ${steps}`);
  if (steps === T) return base;
  const stride = steps <= 1 ? 1 : (T - 1) / (steps - 1);
  const use = new Set<number>();
  let cur = 0;
  for (let i = 0; i < steps; i++) {
    use.add(roundHalfEven(cur));
    cur += stride;
  }
  const map: number[] = [];
  const betas: number[] = [];
  let last = 1;
  for (let t = 0; t < T; t++) {
    if (!use.has(t)) continue;
    betas.push(1 - base.alphasCumprod[t]! / last);
    last = base.alphasCumprod[t]!;
    map.push(base.timestepMap[t]!);
  }
  return scheduleFromBetas(Float64Array.from(betas), Int32Array.from(map));
}

/** Per-sample coefficients [B] gathered on the host, as a [B, 1, 1, 1] tensor. */
function coef(table: Float64Array, t: ArrayLike<number>, f: (v: number) => number = (v) => v): T4 {
  return tf.tensor4d(Float32Array.from(Array.from(t), (ti) => f(table[ti]!)), [t.length, 1, 1, 1]);
}

/** x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε */
function qSample(x0: T4, noise: T4, t: ArrayLike<number>, s: DiffusionSchedule): T4 {
  return tf.tidy(() => tf.add(tf.mul(coef(s.alphasCumprod, t, Math.sqrt), x0), tf.mul(coef(s.alphasCumprod, t, (a) => Math.sqrt(1 - a)), noise)) as T4);
}

/** Identity forward, zero gradient (torch's .detach()). */
function stopGradient<R extends tf.Tensor>(x: R): R {
  return customOp<R>([x], ([xi]) => ({ value: tf.clone(xi as R), gradFunc: (dy) => tf.zerosLike(dy) }));
}

const meanFlat = (x: tf.Tensor): T1 => tf.mean(x, [1, 2, 3]) as T1;

/** Φ(x) ≈ ½(1 + tanh(√(2/π)(x + 0.044715 x³))), as DiT's approx_standard_normal_cdf. */
function approxCdf(x: tf.Tensor): tf.Tensor {
  return tf.mul(0.5, tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3)))))));
}

/** −log p(x_0) in nats under a Gaussian discretized to bins of width 2/255 on [−1, 1], edges open. */
function discretizedNll(x0: tf.Tensor, mean: tf.Tensor, logVar: tf.Tensor): tf.Tensor {
  const centered = tf.sub(x0, mean);
  const inv = tf.exp(tf.mul(-0.5, logVar));
  const cdfPlus = approxCdf(tf.mul(inv, tf.add(centered, 1 / 255)));
  const cdfMin = approxCdf(tf.mul(inv, tf.sub(centered, 1 / 255)));
  const logPlus = tf.log(tf.maximum(cdfPlus, 1e-12));
  const logOneMinus = tf.log(tf.maximum(tf.sub(1, cdfMin), 1e-12));
  const logDelta = tf.log(tf.maximum(tf.sub(cdfPlus, cdfMin), 1e-12));
  return tf.neg(tf.where(tf.less(x0, -0.999), logPlus, tf.where(tf.greater(x0, 0.999), logOneMinus, logDelta)));
}

export type LossTerms = {
  /** [B] mean over C, H, W of (ε − ε_θ)² */
  readonly mse: T1;
  /** [B] L_vlb in bits per dimension (zeros without learned variance) */
  readonly vb: T1;
  /** [B] mse + vb: DiT's per-sample training loss */
  readonly loss: T1;
};

/**
 * The DiT objective from the model output `out` [B, 2C, H, W] (ε_θ, v) for x_t = qSample(x0, noise, t).
 * The VLB term sees ε_θ through a stop-gradient (gaussian_diffusion.py's `frozen_out`).
 */
export function lossTerms(x0: T4, noise: T4, t: ArrayLike<number>, out: T4, s: DiffusionSchedule): LossTerms {
  return tf.tidy(() => {
    const C = x0.shape[1];
    const eps = out.slice([0, 0, 0, 0], [-1, C, -1, -1]);
    const mse = meanFlat(tf.square(tf.sub(noise, eps)));
    if (out.shape[1] === C) return { mse, vb: tf.zerosLike(mse), loss: mse };
    const v = out.slice([0, C, 0, 0], [-1, C, -1, -1]);
    const xt = qSample(x0, noise, t, s);
    const c1 = coef(s.posteriorMeanCoef1, t);
    const c2 = coef(s.posteriorMeanCoef2, t);
    const minLog = coef(s.posteriorLogVarianceClipped, t);
    const trueMean = tf.add(tf.mul(c1, x0), tf.mul(c2, xt));
    const frac = tf.div(tf.add(v, 1), 2);
    const logVar = tf.add(tf.mul(frac, coef(s.betas, t, Math.log)), tf.mul(tf.sub(1, frac), minLog)); // [B, C, H, W]
    // x̂_0 = x_t/√ᾱ_t − √(1/ᾱ_t − 1)·ε_θ, with ε_θ frozen
    const x0Pred = tf.sub(tf.mul(coef(s.alphasCumprod, t, (a) => 1 / Math.sqrt(a)), xt), tf.mul(coef(s.alphasCumprod, t, (a) => Math.sqrt(1 / a - 1)), stopGradient(eps)));
    const mean = tf.add(tf.mul(c1, x0Pred), tf.mul(c2, xt));
    const kl = tf.mul(0.5, tf.add(tf.add(-1, tf.sub(logVar, minLog)), tf.add(tf.exp(tf.sub(minLog, logVar)), tf.mul(tf.square(tf.sub(trueMean, mean)), tf.exp(tf.neg(logVar))))));
    let vb = tf.div(meanFlat(kl), Math.LN2) as T1;
    if (Array.from(t).some((ti) => ti === 0)) {
      const nll = tf.div(meanFlat(discretizedNll(x0, mean, logVar)), Math.LN2);
      vb = tf.where(tf.equal(tf.tensor1d(Array.from(t), 'int32'), 0), nll, vb) as T1;
    }
    return { mse, vb, loss: tf.add(mse, vb) as T1 };
  });
}

/** Model output on x_t, then lossTerms: the per-sample DiT loss for labels y (already dropped to null where intended). */
export function trainingLosses(model: DitModel, x0: T4, noise: T4, t: ArrayLike<number>, y: ArrayLike<number>, s: DiffusionSchedule): LossTerms {
  return tf.tidy(() => lossTerms(x0, noise, t, model.forward(qSample(x0, noise, t, s), t, y), s));
}

export type SamplerName = 'ddpm' | 'ddim';

export interface SampleOptions {
  /** Respaced chain length (DiT samples with 250). */
  readonly steps: number;
  /** Classifier-free guidance scale; 1 = no guidance (one model pass per step). */
  readonly cfg: number;
  readonly sampler: SamplerName;
  /** DDIM's η (0: deterministic given the start noise). */
  readonly eta?: number;
  readonly seed: number;
  /** Called after each step with the chain index (progress). */
  readonly onStep?: (i: number) => void;
}

/** Latents [B, C, H, W] for `labels`, from seeded start noise; every random draw comes from (seed, step). */
export function sampleLatents(model: DitModel, labels: readonly number[], opts: SampleOptions): T4 {
  const c = model.config;
  const s = respace(linearSchedule(1000), opts.steps);
  const B = labels.length;
  const shape: [number, number, number, number] = [B, c.inChannels, c.inputSize, c.inputSize];
  const n = shape.reduce((a, b) => a * b, 1);
  const eta = opts.eta ?? 0;
  let x = tf.tensor4d(gaussian(Rng.from(opts.seed, 0x5a3), n), shape);
  for (let i = s.numTimesteps - 1; i >= 0; i--) {
    const next = tf.tidy(() => {
      const tt = new Array<number>(B).fill(s.timestepMap[i]!);
      const out = opts.cfg === 1 ? model.forward(x, tt, labels) : model.forwardWithCfg(x, tt, labels, opts.cfg);
      const C = c.inChannels;
      const eps = out.slice([0, 0, 0, 0], [-1, C, -1, -1]);
      const ab = s.alphasCumprod[i]!;
      const abPrev = s.alphasCumprodPrev[i]!;
      const x0Pred = tf.sub(tf.mul(1 / Math.sqrt(ab), x), tf.mul(Math.sqrt(1 / ab - 1), eps));
      const noise = (): tf.Tensor => tf.tensor4d(gaussian(Rng.from(opts.seed, 0x5a3, i + 1), n), shape);
      if (opts.sampler === 'ddim') {
        const sigma = eta * Math.sqrt((1 - abPrev) / (1 - ab)) * Math.sqrt(1 - ab / abPrev);
        const mean = tf.add(tf.mul(Math.sqrt(abPrev), x0Pred), tf.mul(Math.sqrt(1 - abPrev - sigma * sigma), eps));
        return i > 0 && sigma > 0 ? tf.add(mean, tf.mul(sigma, noise())) : mean;
      }
      const mean = tf.add(tf.mul(s.posteriorMeanCoef1[i]!, x0Pred), tf.mul(s.posteriorMeanCoef2[i]!, x));
      if (i === 0) return mean;
      const minLog = s.posteriorLogVarianceClipped[i]!;
      const maxLog = Math.log(s.betas[i]!);
      // Without learned variance DiT uses FIXED_LARGE: σ² = β_t.
      const logVar = c.learnSigma ? tf.add(tf.mul(tf.div(tf.add(out.slice([0, C, 0, 0], [-1, C, -1, -1]), 1), 2), maxLog - minLog), minLog) : tf.scalar(maxLog);
      return tf.add(mean, tf.mul(tf.exp(tf.mul(0.5, logVar)), noise()));
    }) as T4;
    x.dispose();
    x = next;
    opts.onStep?.(i);
  }
  return x;
}

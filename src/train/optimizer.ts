// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019) over one fused
// Float32 buffer of every trainable element, exactly as torch.optim.AdamW updates:
//   p ← p·(1 − lr·wd);  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;
//   p ← p − lr · (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε)
// The trainable state is tiny for PEFT (1LoRA on LLaMA-2-7B: 1.38 M floats), so it lives in JS
// typed arrays: the same buffer is all-reduced across workers, clipped, updated and checkpointed,
// and every rank computes bit-identical parameters.

export interface AdamWOptions {
  readonly betas: readonly [number, number];
  readonly eps: number;
  readonly weightDecay: number;
}

export class AdamW {
  readonly m: Float32Array;
  readonly v: Float32Array;
  /** Number of updates applied so far (t in the bias corrections). */
  t = 0;

  constructor(
    readonly size: number,
    readonly opts: AdamWOptions,
  ) {
    this.m = new Float32Array(size);
    this.v = new Float32Array(size);
  }

  /** Applies one update in place to `params` with gradient `grad` (both fused, same layout). */
  step(params: Float32Array, grad: Float32Array, lr: number, decayMask?: Uint8Array): void {
    const [b1, b2] = this.opts.betas;
    const { eps, weightDecay } = this.opts;
    this.t += 1;
    const bc1 = 1 - b1 ** this.t;
    const bc2 = 1 - b2 ** this.t;
    const stepSize = lr / bc1;
    const sqrtBc2 = Math.sqrt(bc2);
    const { m, v } = this;
    for (let i = 0; i < params.length; i++) {
      const g = grad[i] as number;
      let p = params[i] as number;
      if (weightDecay !== 0 && (decayMask === undefined || decayMask[i] === 1)) p *= 1 - lr * weightDecay;
      const mi = b1 * (m[i] as number) + (1 - b1) * g;
      const vi = b2 * (v[i] as number) + (1 - b2) * g * g;
      m[i] = mi;
      v[i] = vi;
      params[i] = p - (stepSize * mi) / (Math.sqrt(vi) / sqrtBc2 + eps);
    }
  }

  restore(state: { m: Float32Array; v: Float32Array; t: number }): void {
    if (state.m.length !== this.size || state.v.length !== this.size) {
      throw new Error(`optimizer state holds ${state.m.length} elements, the trainable set has ${this.size}`);
    }
    this.m.set(state.m);
    this.v.set(state.v);
    this.t = state.t;
  }
}

/** Scales `grad` in place so its global L2 norm is at most `maxNorm` (torch clip_grad_norm_); returns the norm before clipping. */
export function clipGlobalNorm(grad: Float32Array, maxNorm: number): number {
  let sq = 0;
  for (let i = 0; i < grad.length; i++) sq += (grad[i] as number) ** 2;
  const norm = Math.sqrt(sq);
  if (maxNorm > 0 && norm > maxNorm) {
    const scale = maxNorm / (norm + 1e-6);
    for (let i = 0; i < grad.length; i++) grad[i] = (grad[i] as number) * scale;
  }
  return norm;
}

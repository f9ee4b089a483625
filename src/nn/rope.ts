// RoPE inverse frequencies θ_i = theta^(-2i/hd), i < hd/2 (RoFormer, arXiv 2104.09864), and the
// context-extension rescalings of Hugging Face transformers' modeling_rope_utils.py:
// `linear` (position interpolation: θ_i / factor), `dynamic` (NTK-aware: a larger base once the
// sequence outgrows max_position_embeddings) and `llama3` (Llama 3.1+: low frequencies ÷ factor,
// high ones kept, a smooth ramp between). All of them leave cos/sin unscaled (attention factor 1).

export type RopeScaling =
  | { readonly type: 'linear'; readonly factor: number }
  /** `maxPositionEmbeddings` is the config's, the length up to which plain frequencies are used. */
  | { readonly type: 'dynamic'; readonly factor: number; readonly maxPositionEmbeddings: number }
  | {
      readonly type: 'llama3';
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositionEmbeddings: number;
    };

export interface Rope {
  readonly theta: number;
  readonly scaling: RopeScaling | null;
}

/**
 * The effective length a table for positions < `len` is computed for: only dynamic NTK depends on
 * it (HF recomputes inv_freq from max(position_ids) + 1 once it exceeds max_position_embeddings),
 * so every other RoPE shares one table whatever the length.
 */
export function ropeSeqLen(rope: Rope, len: number): number {
  const s = rope.scaling;
  return s?.type === 'dynamic' && len > s.maxPositionEmbeddings ? len : 0;
}

/** inv_freq [hd/2] in float64 for a sequence covering positions < seqLen (see ropeSeqLen). */
export function ropeInvFreq(hd: number, rope: Rope, seqLen = 0): Float64Array {
  const s = rope.scaling;
  let base = rope.theta;
  if (s?.type === 'dynamic' && seqLen > s.maxPositionEmbeddings) {
    // HF _compute_dynamic_ntk_parameters: base · (factor·L/max − (factor − 1))^(hd/(hd−2))
    base *= Math.pow((s.factor * seqLen) / s.maxPositionEmbeddings - (s.factor - 1), hd / (hd - 2));
  }
  const half = hd / 2;
  const out = new Float64Array(half);
  for (let i = 0; i < half; i++) {
    const inv = 1 / Math.pow(base, (2 * i) / hd);
    out[i] = s?.type === 'linear' ? inv / s.factor : s?.type === 'llama3' ? llama3(inv, s) : inv;
  }
  return out;
}

/**
 * HF _compute_llama3_parameters: with wavelength λ = 2π/θ and L₀ the original context, λ < L₀/high
 * keeps θ, λ > L₀/low divides it by factor, and in between θ·((1 − a)/factor + a) with
 * a = (L₀/λ − low) / (high − low).
 */
function llama3(inv: number, s: Extract<RopeScaling, { type: 'llama3' }>): number {
  const wavelen = (2 * Math.PI) / inv;
  const l0 = s.originalMaxPositionEmbeddings;
  if (wavelen < l0 / s.highFreqFactor) return inv;
  if (wavelen > l0 / s.lowFreqFactor) return inv / s.factor;
  const a = (l0 / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
  return ((1 - a) * inv) / s.factor + a * inv;
}

/** A cache key: equal keys give equal tables. */
export function ropeKey(hd: number, rope: Rope, seqLen: number): string {
  return JSON.stringify([hd, rope.theta, rope.scaling, seqLen]);
}

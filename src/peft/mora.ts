// MoRA — "MoRA: High-Rank Updating for Parameter-Efficient Fine-Tuning", Jiang et al. 2024 (arXiv
// 2405.12130), types 1 and 6 of github.com/kongds/MoRA, as the 1LoRA paper compares them (§3.1,
// Table 1): a trainable square M ∈ R^{r̂×r̂} between a fixed compression f_c and decompression f_d;
// y = W0 x + f_d(M f_c(x)). r̂ = round(√d), d = out features (1LoRA paper; rounded down to even
// for type 6); `r` sets r̂ itself, while `lora_r` takes peft-mora's `r` (a LoRA rank) and derives
// r̂ = ⌊√((k + d)·lora_r) + ½⌋ as its update_layer does (even for type 6). `dropout` is peft-mora's
// lora_dropout on the input of f_c. M = 0 at init. The exact formulas:
// - both types pad x to a multiple of r̂ by wrapping around (x̃[idx] = x[idx mod k], idx < k + p);
// - type 1 "sharing": c_j = Σ_b x̃[b·r̂ + j]; z = M c; out_i = z_{i mod r̂};
// - type 6 "RoPE": blocks x̃_b rotated by NeoX half-split RoPE with θ_{b,j} = b·10000^{−2j/r̂},
//   z_b = M x̃′_b, concatenated (length k + p), truncated to d or tiled with period k + p.
// M is stored in kernel layout M_k = Mᵀ (z = c M_k); the file's `mora_M` is M [r̂, r̂].
import { tf } from '../backend/tf.js';
import { linear, matmul, recomputed } from '../backend/linear.js';
import { rotateHalfValues } from '../nn/attention.js';
import { UserError } from '../errors.js';
import { adapterDropout, dropoutKey } from '../nn/dropout.js';
import { oneHotF32 } from '../nn/ops.js';
import type { LinearModule, LinearSpec } from '../nn/modules.js';
import { AdditiveAdapter } from './additive.js';
import { zerosVar } from './init.js';
import { defineMethod, type MethodDef, type TermOptions } from './types.js';

type T2 = tf.Tensor2D;
export type MoraType = 1 | 6;

/** r̂ for a layer: the term's r, else from lora_r as peft-mora, else round(√d) (type 6: rounded down to even). */
export function moraRank(l: LinearSpec, term: TermOptions, type: MoraType): number {
  if (term.r !== undefined) return term.r;
  const r = term.lora_r !== undefined ? Math.floor(Math.sqrt((l.inFeatures + l.outFeatures) * term.lora_r) + 0.5) : Math.round(Math.sqrt(l.outFeatures));
  return type === 6 ? Math.max(2, r - (r % 2)) : r;
}

/** x [N, k] -> x̃ [N, k + p] with x̃[:, idx] = x[:, idx mod k]. */
function wrapPad(x: T2, total: number): T2 {
  const k = x.shape[1];
  if (total === k) return x;
  if (total - k <= k) return tf.concat([x, tf.slice(x, [0, 0], [-1, total - k])], 1);
  return tf.slice(tf.tile(x, [1, Math.ceil(total / k)]), [0, 0], [-1, total]);
}

/** z [N, L] -> [N, d]: truncated, or repeated with period L (concat: its gradient is a few slices, Tile's one per copy). */
function fitTo(z: T2, d: number): T2 {
  const L = z.shape[1];
  if (L === d) return z;
  const t = L > d ? z : tf.concat(Array.from({ length: Math.ceil(d / L) }, () => z), 1);
  return tf.slice(t, [0, 0], [-1, d]);
}

/**
 * Fixed 0/±1 matrices shared by every layer of one shape (a 7B model has a handful of shapes, not
 * 224 copies), counted so the last adapter to go frees them. Built on the CPU, kept out of tidies.
 */
const fixedMatrices = new Map<string, { t: T2; refs: number }>();

function acquireFixed(key: string, rows: number, cols: number, fill: (m: Float32Array) => void): T2 {
  const hit = fixedMatrices.get(key);
  if (hit) {
    hit.refs++;
    return hit.t;
  }
  const m = new Float32Array(rows * cols);
  fill(m);
  const t = tf.keep(tf.tensor2d(m, [rows, cols]));
  fixedMatrices.set(key, { t, refs: 1 });
  return t;
}

function releaseFixed(key: string): void {
  const hit = fixedMatrices.get(key);
  if (!hit || --hit.refs > 0) return;
  hit.t.dispose();
  fixedMatrices.delete(key);
}

/** Type 1's compression C [k, r̂]: C[i, j] = #{idx < L : idx mod k = i, idx mod r̂ = j}, so x C = f_c(x). */
function compressionKey(k: number, r: number, L: number): [string, number, number, (m: Float32Array) => void] {
  return [`mora1-c/${k}/${r}/${L}`, k, r, (m) => {
    for (let idx = 0; idx < L; idx++) m[(idx % k) * r + (idx % r)]! += 1;
  }];
}

/** Type 1's decompression D [r̂, d]: D[j, i] = 1 where i mod r̂ = j, so z D = f_d(z). */
function decompressionKey(r: number, d: number): [string, number, number, (m: Float32Array) => void] {
  return [`mora1-d/${r}/${d}`, r, d, (m) => {
    for (let i = 0; i < d; i++) m[(i % r) * d + i] = 1;
  }];
}

/** Type 6's half rotation per block as a signed permutation [r̂, r̂]: b R = [−b_hi, b_lo] (LLaMA's rotate_half). */
function rotateHalfKey(r: number): [string, number, number, (m: Float32Array) => void] {
  return [`mora6-rot/${r}`, r, r, (m) => m.set(rotateHalfValues(r))];
}

/** cos and sin of θ_{b,m} = b·10000^{−2(m mod h)/r̂} for nb blocks: [nb, r̂] each (MoRA's `emb`). */
function ropeTables(nb: number, r: number): { cos: Float32Array; sin: Float32Array } {
  const h = r / 2;
  const cos = new Float32Array(nb * r);
  const sin = new Float32Array(nb * r);
  for (let b = 0; b < nb; b++) {
    for (let m = 0; m < r; m++) {
      const theta = b * Math.pow(10000, -(2 * (m % h)) / r);
      cos[b * r + m] = Math.cos(theta);
      sin[b * r + m] = Math.sin(theta);
    }
  }
  return { cos, sin };
}

/** Rows of ΔW built per block in delta(): a [1024, k] slice of the identity at a time. */
const DELTA_ROWS = 1024;

export class MoraAdapter extends AdditiveAdapter {
  readonly method: string;
  readonly r: number;
  /** [r̂, r̂] kernel layout (Mᵀ). */
  readonly M: tf.Variable<tf.Rank.R2>;
  private readonly padded: number;
  private readonly rope: { cos: tf.Tensor3D; sin: tf.Tensor3D } | null = null;
  /** Keys of the shared fixed matrices this adapter holds: type 1 [C, D], type 6 [rotate-half]. */
  private readonly fixed: string[];
  private readonly mats: T2[];
  private readonly dropout: number;
  private readonly dropoutKey: number;

  constructor(layer: LinearModule, term: TermOptions, readonly type: MoraType) {
    super();
    this.method = `mora${type}`;
    this.r = moraRank(layer, term, type);
    this.dropout = term.dropout ?? 0;
    this.dropoutKey = dropoutKey(layer.path);
    const k = layer.inFeatures;
    this.padded = Math.ceil(k / this.r) * this.r;
    this.M = this.trained('mora_M', zerosVar([this.r, this.r], `${layer.path}.mora_M`) as tf.Variable<tf.Rank.R2>);
    const specs = type === 1 ? [compressionKey(k, this.r, this.padded), decompressionKey(this.r, layer.outFeatures)] : [rotateHalfKey(this.r)];
    this.fixed = specs.map((x) => x[0]);
    this.mats = specs.map((x) => acquireFixed(...x));
    if (type === 6) {
      const nb = this.padded / this.r;
      const t = ropeTables(nb, this.r);
      this.rope = { cos: this.owns(tf.keep(tf.tensor3d(t.cos, [1, nb, this.r]))), sin: this.owns(tf.keep(tf.tensor3d(t.sin, [1, nb, this.r]))) };
    }
  }

  /**
   * f_d(M f_c(x)): [N, k] -> [N, d], as plain 2-D matMuls where it can be (tfjs-wasm's Tile, Sum over
   * a middle axis and strided Slice backwards are what made MoRA ~25× slower than LoRA):
   * type 1 is x C M_k D with the fixed C and D; type 6 pads, rotates each block with a signed
   * permutation and the cos/sin tables, multiplies the blocks by M_k and fits the length.
   */
  moraDelta(x: T2, d: number): T2 {
    if (!this.rope) {
      const [C, D] = this.mats as [T2, T2];
      return linear(matmul(linear(x, C), this.M), D);
    }
    // Recomputed in the backward: the padded, rotated and blocked copies of x are ~10 tensors of
    // [N, k + p] per layer, which tfjs would otherwise keep for the whole backward (2.4× LoRA's peak).
    return recomputed([x, this.M], (xi, m) => this.ropeDelta(xi as T2, m as T2, d));
  }

  private ropeDelta(x: T2, m: T2, d: number): T2 {
    const n = x.shape[0];
    const r = this.r;
    const rope = this.rope as { cos: tf.Tensor3D; sin: tf.Tensor3D };
    const nb = this.padded / r;
    const blocks = tf.reshape(wrapPad(x, this.padded), [n * nb, r]) as T2; // [N, k+p] -> [N·nb, r̂]
    const rot = tf.reshape(linear(blocks, this.mats[0] as T2), [n, nb, r]); // [−x_hi, x_lo] per block
    const xr = tf.add(tf.mul(tf.reshape(blocks, [n, nb, r]), rope.cos), tf.mul(rot, rope.sin));
    const z = matmul(tf.reshape(xr, [n * nb, r]) as T2, m); // [N·nb, r̂]
    return fitTo(tf.reshape(z, [n, this.padded]) as T2, d);
  }

  forward(layer: LinearModule, x: T2): T2 {
    return tf.add(layer.base(x), this.moraDelta(adapterDropout(x, this.dropout, this.dropoutKey), layer.outFeatures));
  }

  /**
   * ΔW in kernel layout [k, d] from M's values `mk` (read by the caller), built from the merge
   * rule (not from the forward, so a test can compare the two): type 1 accumulates
   * M[i mod r̂, idx mod r̂] at column idx mod k; type 6 places M·R_b block-diagonally and wraps the
   * padded columns onto the first p.
   */
  deltaWeight(layer: LinearModule, mk: Float32Array): Float32Array {
    const k = layer.inFeatures;
    const d = layer.outFeatures;
    const r = this.r;
    const L = this.padded;
    // mk[jin * r + jout] = M[jout, jin]
    const M = (jout: number, jin: number): number => mk[jin * r + jout]!;
    const out = new Float32Array(k * d);
    if (this.type === 1) {
      for (let idx = 0; idx < L; idx++) {
        const row = (idx % k) * d;
        const jin = idx % r;
        for (let i = 0; i < d; i++) out[row + i]! += M(i % r, jin);
      }
      return out;
    }
    const h = r / 2;
    const { cos, sin } = ropeTables(L / r, r);
    for (let i = 0; i < d; i++) {
      const q = i % L;
      const b = Math.floor(q / r);
      const j = q % r;
      for (let jp = 0; jp < r; jp++) {
        // (M R_b)[j, j']: R_b[j', j'] = cos, R_b[j'−h, j'] = −sin (j' ≥ h), R_b[j'+h, j'] = sin (j' < h).
        let v = M(j, jp) * cos[b * r + jp]!;
        v += jp >= h ? -M(j, jp - h) * sin[b * r + jp - h]! : M(j, jp + h) * sin[b * r + jp + h]!;
        out[((b * r + jp) % k) * d + i]! += v;
      }
    }
    return out;
  }

  /**
   * ΔW [k, d] on the device, as the delta of the identity's rows (the delta is linear in x: row i
   * of ΔW is moraDelta(e_i)), in blocks of rows so that no [k, k] identity is ever whole. A merge
   * thus needs no host read of M (a GPU backend), and equals deltaWeight() (tested).
   */
  delta(layer: LinearModule): T2 {
    const k = layer.inFeatures;
    const rows: T2[] = [];
    for (let i0 = 0; i0 < k; i0 += DELTA_ROWS) {
      const n = Math.min(DELTA_ROWS, k - i0);
      rows.push(tf.tidy(() => this.moraDelta(oneHotF32(tf.range(i0, i0 + n, 1, 'int32') as tf.Tensor1D, k), layer.outFeatures)));
    }
    const out = rows.length === 1 ? (rows[0] as T2) : (tf.concat(rows, 0) as T2);
    if (rows.length > 1) tf.dispose(rows);
    return out;
  }

  override dispose(): void {
    super.dispose();
    for (const key of this.fixed) releaseFixed(key);
  }
}

function moraDef<N extends 'mora1' | 'mora6'>(name: N, type: MoraType): MethodDef<N> {
  return defineMethod({
    name,
    kind: 'delta',
    keys: ['r', 'lora_r', 'dropout', 'targets'],
    summary: `MoRA type ${type} (Jiang et al. 2024): W0 x + f_d(M f_c(x)), M ∈ R^{r̂×r̂}, r̂ = round(√d)${type === 6 ? ' (even), RoPE compression' : ', sharing compression'}`,
    mergeable: true,
    identityAtInit: true,
    linearParams: (l, term) => {
      const r = moraRank(l, term, type);
      return { mora_M: [r, r] };
    },
    createAdapter: (layer, ctx) => new MoraAdapter(layer, ctx.term, type),
    validate: (term) => checkRank(term, type),
  });
}

function checkRank(term: TermOptions, type: MoraType): void {
  if (term.r !== undefined && term.lora_r !== undefined) {
    throw new UserError(`method 'mora${type}': give 'r' (r̂ itself) or 'lora_r' (peft-mora's LoRA rank, r̂ derived from it), not both`);
  }
  if (type === 6 && term.r !== undefined && term.r % 2 !== 0) {
    throw new UserError(`method 'mora6': key 'r' must be even (RoPE rotates feature pairs), got ${term.r}`);
  }
}

export const mora1 = moraDef('mora1', 1);
export const mora6 = moraDef('mora6', 6);

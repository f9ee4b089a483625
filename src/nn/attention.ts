// Multi-head attention pieces shared by LLaMA, ViT and DiT ("Attention Is All You Need", §3.2):
// softmax(q kᵀ / √hd + mask) v per head, with rotary position embeddings for LLaMA (RoFormer,
// arXiv 2104.09864, in Hugging Face's rotate_half form). Heads are folded into the batch so that
// both attention matmuls are `bmm` on [B·H, T, hd] operands (docs/architecture.md#backends: plain kernels only).
// The causal mask and the RoPE tables are built once and kept (tf.keep) across calls.
import { tf } from '../backend/tf.js';
import { bmm, customOp } from '../backend/linear.js';
import { ropeInvFreq, ropeKey, ropeSeqLen, type Rope } from './rope.js';

type T2 = tf.Tensor2D;
type T4 = tf.Tensor4D;

/** [B·T, H·hd] -> [B, H, T, hd] */
export function splitHeads(x: T2, b: number, t: number, h: number, hd: number): T4 {
  return tf.transpose(x.reshape([b, t, h, hd]), [0, 2, 1, 3]) as T4; // [B, T, H, hd] -> [B, H, T, hd]
}

/** [B, H, T, hd] -> [B·T, H·hd] */
export function mergeHeads(x: T4): T2 {
  const [b, h, t, hd] = x.shape;
  return tf.transpose(x, [0, 2, 1, 3]).reshape([b * t, h * hd]); // [B, H, T, hd] -> [B, T, H, hd] -> [B·T, H·hd]
}

/**
 * Grouped-query attention: each of the Hkv key/value heads serves H/Hkv consecutive query heads
 * (Hugging Face's repeat_kv). [B, Hkv, S, hd] -> [B, H, S, hd]
 */
export function repeatKv(x: T4, rep: number): T4 {
  if (rep === 1) return x;
  const [b, hkv, s, hd] = x.shape;
  // Rank 3, because tfjs has no Tile gradient above rank 4.
  const tiled = tf.tile(x.reshape([b * hkv, 1, s * hd]), [1, rep, 1]); // [B·Hkv, rep, S·hd]
  return tiled.reshape([b, hkv * rep, s, hd]);
}

let maskTable: T2 | null = null;

/**
 * Additive causal mask [T, S] for T queries at absolute positions S-T..S-1 over S keys: 0 where
 * key j ≤ query position, -1e9 elsewhere (finite, so a fully masked row cannot produce NaN).
 * One [L, L] table is kept (L doubles as needed) and each call slices it, so batches of every
 * length share it instead of caching one tensor per (T, S).
 */
export function causalMask(t: number, s: number): T2 {
  const need = Math.max(s, 16);
  if (!maskTable || maskTable.isDisposed || maskTable.shape[0] < need) {
    maskTable?.dispose();
    let l = 16;
    while (l < need) l *= 2;
    const m = new Float32Array(l * l);
    for (let i = 0; i < l; i++) for (let j = i + 1; j < l; j++) m[i * l + j] = -1e9;
    maskTable = tf.keep(tf.tensor2d(m, [l, l]));
  }
  return tf.slice(maskTable, [s - t, 0], [t, s]);
}

/**
 * softmax(q kᵀ / √hd + mask) v. q [B, H, T, hd], k and v [B, H, S, hd], mask [T, S] or null
 * -> [B, H, T, hd]
 */
export function attend(q: T4, k: T4, v: T4, mask: T2 | null): T4 {
  const [b, h, t, hd] = q.shape;
  const s = k.shape[2];
  const q3 = tf.mul(q, 1 / Math.sqrt(hd)).reshape([b * h, t, hd]) as tf.Tensor3D; // [B·H, T, hd]
  const kT = tf.transpose(k.reshape([b * h, s, hd]), [0, 2, 1]) as tf.Tensor3D; // [B·H, hd, S]
  let scores = bmm(q3, kT); // [B·H, T, hd] · [B·H, hd, S] -> [B·H, T, S]
  if (mask) scores = tf.add(scores, mask);
  const p = tf.softmax(scores); // over S
  const y = bmm(p, v.reshape([b * h, s, hd]) as tf.Tensor3D); // [B·H, T, S] · [B·H, S, hd] -> [B·H, T, hd]
  return y.reshape([b, h, t, hd]);
}

interface RopeTables {
  cos: T2;
  sin: T2;
}
/** One entry per (hd, rope): a dynamic-NTK table is replaced when the sequence length changes. */
const ropeCache = new Map<string, RopeTables & { key: string }>();

/**
 * cos/sin tables [L, hd] with L ≥ `len` (grown by doubling, so generation reuses one table):
 * angle(p, i) = p·θ_i with θ from ropeInvFreq (src/nn/rope.ts), duplicated over both halves as
 * Hugging Face's `emb = cat(freqs, freqs)`. θ is rounded to float32 as HF holds inv_freq, the
 * angle once more as HF's float32 product.
 */
function ropeTables(hd: number, rope: Rope, len: number): RopeTables {
  const slot = ropeKey(hd, rope, 0);
  const key = ropeKey(hd, rope, ropeSeqLen(rope, len));
  const hit = ropeCache.get(slot);
  if (hit && hit.key === key && !hit.cos.isDisposed && hit.cos.shape[0] >= len) return hit;
  const l = Math.max(64, 2 ** Math.ceil(Math.log2(Math.max(len, 1))));
  const half = hd / 2;
  const invFreq = Float32Array.from(ropeInvFreq(hd, rope, ropeSeqLen(rope, len)));
  const c = new Float32Array(l * hd);
  const s = new Float32Array(l * hd);
  for (let p = 0; p < l; p++) {
    for (let i = 0; i < half; i++) {
      const a = Math.fround(p * invFreq[i]!);
      c[p * hd + i] = c[p * hd + half + i] = Math.cos(a);
      s[p * hd + i] = s[p * hd + half + i] = Math.sin(a);
    }
  }
  if (hit) {
    hit.cos.dispose();
    hit.sin.dispose();
  }
  const tables = { key, cos: tf.keep(tf.tensor2d(c, [l, hd])), sin: tf.keep(tf.tensor2d(s, [l, hd])) };
  ropeCache.set(slot, tables);
  return tables;
}

/** The cos/sin rows [len, hd] for positions 0..len-1, as plain arrays (tests against HF's formulas). */
export function ropeCosSin(hd: number, rope: Rope, len: number): { cos: Float32Array; sin: Float32Array } {
  const { cos, sin } = ropeTables(hd, rope, len);
  return { cos: (cos.dataSync() as Float32Array).slice(0, len * hd), sin: (sin.dataSync() as Float32Array).slice(0, len * hd) };
}

let rotation: { hd: number; r: T2 } | null = null;

/**
 * The values of R [n, n], row-major, with x R = rotate_half(x) = [-x2, x1] (a signed permutation,
 * so exact; Rᵀ = -R). Also MoRA 6's per-block rotation (src/peft/mora.ts).
 */
export function rotateHalfValues(n: number): Float32Array {
  const half = n / 2;
  const m = new Float32Array(n * n);
  for (let j = 0; j < half; j++) {
    m[(j + half) * n + j] = -1; // out[j] = -x[j + half]
    m[j * n + j + half] = 1; // out[j + half] = x[j]
  }
  return m;
}

/** R [hd, hd] for the heads' width, kept while hd stays the same. */
function rotateHalfMatrix(hd: number): T2 {
  if (rotation && rotation.hd === hd && !rotation.r.isDisposed) return rotation.r;
  rotation?.r.dispose();
  rotation = { hd, r: tf.keep(tf.tensor2d(rotateHalfValues(hd), [hd, hd])) };
  return rotation.r;
}

/**
 * Rotary embedding of x [B, H, T, hd] at absolute positions offset..offset+T-1 (`rope` a theta
 * alone is plain RoPE):
 * x·cos + rotate_half(x)·sin with rotate_half([x1, x2]) = [-x2, x1] (the halves of hd).
 * One custom op that saves nothing (dx = g·cos − (g·sin) R, as Rᵀ = −R); rotate_half is a matMul
 * by R because Split/Concat on wasm cost ~4 ms per call at [8, 4, 128, 64].
 */
export function applyRope(x: T4, rope: Rope | number, offset: number): T4 {
  const [b, h, t, hd] = x.shape;
  const rows = b * h * t;
  const r: Rope = typeof rope === 'number' ? { theta: rope, scaling: null } : rope;
  const tables = (): { c: T2; s: T2 } => {
    const { cos, sin } = ropeTables(hd, r, offset + t);
    return { c: tf.slice(cos, [offset, 0], [t, hd]), s: tf.slice(sin, [offset, 0], [t, hd]) }; // [T, hd], broadcast over B, H
  };
  const rot = (y: tf.Tensor): tf.Tensor => tf.matMul(y.reshape([rows, hd]) as T2, rotateHalfMatrix(hd)).reshape([b, h, t, hd]); // [B·H·T, hd]·[hd, hd]
  return customOp<T4>([x], ([xi]) => {
    const { c, s } = tables();
    return {
      value: tf.add(tf.mul(xi as T4, c), tf.mul(rot(xi as T4), s)) as T4,
      gradFunc: (g) => {
        const { c: gc, s: gs } = tables();
        return tf.sub(tf.mul(g, gc), rot(tf.mul(g, gs)));
      },
    };
  });
}

/** Frees the cached masks and tables (tests that count tensors). */
export function clearAttentionCaches(): void {
  maskTable?.dispose();
  maskTable = null;
  for (const r of ropeCache.values()) {
    r.cos.dispose();
    r.sin.dispose();
  }
  ropeCache.clear();
  rotation?.r.dispose();
  rotation = null;
}

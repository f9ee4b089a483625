// Small tensor functions the model files share: normalisations, activations, the embedding lookup
// and the token cross-entropy. The last two are custom ops because tfjs-wasm has no
// UnsortedSegmentSum (the built-in gather gradient) and because a one-hot [N, V] target is never
// needed in the forward pass: the loss is logsumexp(z) - z[label], its gradient softmax(z) - onehot.
import { tf } from '../backend/tf.js';
import { customOp, sumRows } from '../backend/linear.js';

type T1 = tf.Tensor1D;
type T2 = tf.Tensor2D;

/**
 * RMSNorm (Zhang & Sennrich 2019) as LLaMA uses it: x / sqrt(mean(x²) + eps) · w. x [N, D]
 * One custom op saving x and r = 1/rms [N, 1]: as plain ops its five intermediates and their
 * gradients stayed alive through the whole backward (tfjs frees gradients only when it ends).
 * dx = r·(ĝ − x̂·mean(ĝ ⊙ x̂)) with x̂ = x r, ĝ = g ⊙ w; dw = Σ_rows g ⊙ x̂.
 */
export function rmsNorm(x: T2, w: T1, eps: number): T2 {
  const trainW = (w as Partial<tf.Variable>).trainable === true;
  return customOp<T2>(trainW ? [x, w] : [x], ([xi, wi], save) => {
    const xs = xi as T2;
    const r = tf.rsqrt(tf.add(tf.mean(tf.square(xs), -1, true), eps)); // [N, 1]
    save([xs, r]);
    return {
      value: tf.mul(tf.mul(xs, r), wi ?? w) as T2,
      gradFunc: (g, saved) => {
        const [sx, sr] = saved as [T2, T2];
        const xhat = tf.mul(sx, sr);
        const gh = tf.mul(g, wi ?? w);
        const dx = tf.mul(tf.sub(gh, tf.mul(xhat, tf.mean(tf.mul(gh, xhat), -1, true))), sr) as T2;
        return trainW ? [dx, sumRows(tf.mul(g, xhat) as T2)] : dx;
      },
    };
  });
}

/**
 * LayerNorm (Ba et al. 2016): (x - μ) / sqrt(σ² + eps) · w + b over the last axis, x [..., D];
 * w null is LayerNorm without affine parameters (DiT's elementwise_affine=False).
 */
export function layerNorm<T extends tf.Tensor>(x: T, w: T1 | null, b: T1 | null, eps: number): T {
  const { mean, variance } = tf.moments(x, -1, true); // [..., 1] each
  const n = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
  const y = w ? tf.mul(n, w) : n;
  return (b ? tf.add(y, b) : y) as T;
}

/** SiLU / swish: x · σ(x). */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/**
 * SwiGLU's gate (Shazeer 2020): silu(a) ⊙ u, one custom op saving a and u (not σ(a), a·σ(a) and
 * their gradients, which tfjs keeps until the backward ends). a, u [N, I]
 * da = g ⊙ u ⊙ σ(a)(1 + a(1 − σ(a))), du = g ⊙ a σ(a).
 */
export function swiGlu(a: T2, u: T2): T2 {
  return customOp<T2>([a, u], ([ai, ui], save) => {
    save([ai as T2, ui as T2]);
    return {
      value: tf.mul(silu(ai as T2), ui as T2) as T2,
      gradFunc: (g, saved) => {
        const [sa, su] = saved as [T2, T2];
        const sig = tf.sigmoid(sa);
        const dsilu = tf.mul(sig, tf.add(1, tf.mul(sa, tf.sub(1, sig))));
        return [tf.mul(tf.mul(g, su), dsilu), tf.mul(g, tf.mul(sa, sig))];
      },
    };
  });
}

/** The exact GELU of BERT/ViT: x · Φ(x) = 0.5 x (1 + erf(x / √2)). */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
}

/** The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`). */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(inner)));
}

/**
 * One-hot rows as float32. tfjs-backend-wasm 4.22's OneHot kernel returns all zeros when asked
 * for dtype 'float32' (measured), so the int32 result is cast instead.
 */
export function oneHotF32(indices: T1, depth: number): T2 {
  return tf.cast(tf.oneHot(indices, depth), 'float32') as T2;
}

/**
 * Rows of `table` [V, D] at `ids` (int32, any shape, flattened) -> [N, D]. Gradient for the table
 * (full fine-tuning only): onehot(ids)ᵀ · dy, [V, N] · [N, D].
 */
export function embedding(table: T2, ids: tf.Tensor): T2 {
  const flat = ids.reshape([-1]) as T1;
  // Tensors the gradient reads go through save(): closures would see them disposed by callers' tidy.
  return customOp<T2>([table], ([t], save) => {
    save([flat]);
    return {
      value: tf.gather(t as T2, flat),
      gradFunc: (dy, saved) => tf.matMul(tf.transpose(oneHotF32(saved[0] as T1, table.shape[0])), dy),
    };
  });
}

/**
 * Σ over rows with label ≠ -100 of -log softmax(logits)[label]. logits [N, V], labels int32 [N].
 */
export function crossEntropySum(logits: T2, labels: T1): tf.Scalar {
  const [n, v] = logits.shape;
  const valid = tf.notEqual(labels, -100);
  const safe = tf.where(valid, labels, tf.zerosLike(labels)) as T1;
  const weight = tf.cast(valid, 'float32'); // [N]
  return customOp<tf.Scalar>([logits], ([z], save) => {
    const zi = z as T2;
    const m = tf.max(zi, 1, true); // [N, 1]
    const lse = tf.add(m, tf.log(tf.sum(tf.exp(tf.sub(zi, m)), 1, true))); // [N, 1]
    const flatIdx = tf.add(tf.mul(tf.range(0, n, 1, 'int32'), tf.scalar(v, 'int32')), safe); // row·V + label
    const picked = tf.gather(zi.reshape([-1]), flatIdx); // [N]
    save([zi, lse, safe, weight]);
    return {
      value: tf.sum(tf.mul(tf.sub(lse.reshape([n]), picked), weight)),
      gradFunc: (dy, saved) => {
        const [zs, l, lab, w] = saved as [T2, T2, T1, T1];
        const p = tf.exp(tf.sub(zs, l)); // softmax [N, V]
        const g = tf.sub(p, oneHotF32(lab, v));
        return tf.mul(g, tf.mul(w, dy).reshape([n, 1]));
      },
    };
  });
}

// The DPT head of Depth Anything (Ranftl et al. 2021, "Vision Transformers for Dense Prediction"),
// as both code bases build it for Depth Anything: no readout token, no batch norm.
//   reassemble: tokens of 4 encoder layers -> maps on the patch grid -> 1×1 conv to neck_sizes[i]
//               -> resized ×4 (transposed conv), ×2 (transposed conv), ×1, ×½ (3×3 conv, stride 2)
//   neck:       3×3 conv (no bias) of each map to `fusion` channels
//   fusion:     deepest first: x ← x + RCU₁(skip); x ← RCU₂(x); bilinear resize (align_corners
//               true) to the next map's size (×2 for the last); 1×1 conv. RCU(y) = y + conv(relu(conv(relu(y))))
//   head:       3×3 conv to fusion/2, bilinear to patch grid × 14 (align_corners true), 3×3 conv,
//               ReLU, 1×1 conv to one channel, then ReLU (relative) or sigmoid × max_depth (metric).
// Activations are NHWC; weights are kept as PyTorch stores them (OIHW; a transposed conv's
// [in, out, k, k]) and rearranged in the forward, so saving writes them back unchanged and full
// fine-tuning gets their gradients.
import { tf } from '../backend/tf.js';
import { matmul } from '../backend/linear.js';
import { conv2d } from '../nn/conv.js';
import { resize2d } from '../nn/resize.js';
import { depthNames, type DepthConfig } from './depth-anything-config.js';
import { paramOf, type ParamTable } from './layout.js';

type T4 = tf.Tensor4D;

const get = <R extends tf.Rank>(params: ParamTable, name: string): tf.Variable<R> => paramOf<R>(params, name, 'Depth Anything');

const dataIdOf = (t: tf.Tensor): object => (t as unknown as { dataId: object }).dataId;

/**
 * torch.nn.Conv2d (weight OIHW as stored) on NHWC input. A frozen weight is transposed to HWIO
 * once and kept as a frozen variable, so conv2d computes no weight gradient for it (every PEFT
 * method leaves the head frozen); a trained one ('all') is transposed in the forward.
 */
class Conv {
  private readonly w: tf.Variable<tf.Rank.R4>;
  private readonly b: tf.Variable<tf.Rank.R1> | null;
  private hwio: { of: object; k: tf.Variable<tf.Rank.R4> } | null = null;

  constructor(params: ParamTable, name: string, private readonly stride = 1, bias = true) {
    this.w = get(params, `${name}.weight`);
    this.b = bias ? get(params, `${name}.bias`) : null;
  }

  private kernel(): T4 {
    if (this.w.trainable) return tf.transpose(this.w, [2, 3, 1, 0]);
    if (this.hwio?.of !== dataIdOf(this.w)) {
      this.hwio?.k.dispose();
      this.hwio = { of: dataIdOf(this.w), k: tf.variable(tf.tidy(() => tf.transpose(this.w, [2, 3, 1, 0])), false) };
    }
    return this.hwio.k;
  }

  forward(x: T4): T4 {
    const k = this.w.shape[2];
    return conv2d(x, this.kernel(), { stride: this.stride, padding: (k - 1) / 2, bias: this.b });
  }

  dispose(): void {
    this.hwio?.k.dispose();
    this.hwio = null;
  }
}

/**
 * torch.nn.ConvTranspose2d with kernel = stride = f, padding 0: the patches do not overlap, so each
 * input pixel becomes an f×f block, x [N, H, W, I] · W [I, f·f·O] -> [N, H·f, W·f, O].
 */
class UpConv {
  private readonly w: tf.Variable<tf.Rank.R4>;
  private readonly b: tf.Variable<tf.Rank.R1>;

  constructor(params: ParamTable, name: string) {
    this.w = get(params, `${name}.weight`);
    this.b = get(params, `${name}.bias`);
  }

  forward(x: T4): T4 {
    const [n, h, w, i] = x.shape;
    const [, o, f] = this.w.shape as [number, number, number, number];
    const k = tf.transpose(this.w, [0, 2, 3, 1]).reshape([i, f * f * o]) as tf.Tensor2D; // [I, O, f, f] -> [I, f, f, O]
    const y = matmul(x.reshape([n * h * w, i]) as tf.Tensor2D, k).reshape([n, h, w, f, f, o]);
    return tf.add(tf.transpose(y, [0, 1, 3, 2, 4, 5]).reshape([n, h * f, w * f, o]), this.b) as T4;
  }
}

/** Residual conv unit (DPT's ResidualConvUnit / transformers' PreActResidualLayer). */
class Rcu {
  readonly c1: Conv;
  readonly c2: Conv;

  constructor(params: ParamTable, names: readonly [string, string]) {
    this.c1 = new Conv(params, names[0]);
    this.c2 = new Conv(params, names[1]);
  }

  forward(x: T4): T4 {
    return tf.add(x, this.c2.forward(tf.relu(this.c1.forward(tf.relu(x))))) as T4;
  }
}

const alignTrue = { mode: 'bilinear', alignCorners: true } as const;

export class DptHead {
  private readonly projects: Conv[] = [];
  private readonly resizes: (UpConv | Conv | null)[] = [];
  private readonly necks: Conv[] = [];
  private readonly fusion: { res1: Rcu; res2: Rcu; out: Conv }[] = [];
  private readonly head: [Conv, Conv, Conv];
  private readonly convs: Conv[] = [];

  constructor(private readonly c: DepthConfig, params: ParamTable) {
    const n = depthNames(c.keyLayout);
    for (let i = 0; i < 4; i++) {
      this.projects.push(new Conv(params, n.project(i)));
      const f = c.reassembleFactors[i]!;
      this.resizes.push(f > 1 ? new UpConv(params, n.resize(i)) : f < 1 ? new Conv(params, n.resize(i), Math.round(1 / f)) : null);
      this.necks.push(new Conv(params, n.neck(i), 1, false));
      const u = n.fusion(i);
      this.fusion.push({ res1: new Rcu(params, u.res1), res2: new Rcu(params, u.res2), out: new Conv(params, u.out) });
    }
    this.head = [new Conv(params, n.head[0]), new Conv(params, n.head[1]), new Conv(params, n.head[2])];
    for (const r of this.resizes) if (r instanceof Conv) this.convs.push(r);
    for (const u of this.fusion) this.convs.push(u.res1.c1, u.res1.c2, u.res2.c1, u.res2.c2, u.out);
    this.convs.push(...this.projects, ...this.necks, ...this.head);
  }

  /** Frees the transposed copies of frozen kernels (the parameters belong to the model). */
  dispose(): void {
    for (const c of this.convs) c.dispose();
  }

  /** The 4 selected layers' patch tokens [B, gh·gw, D] (normalised, CLS removed) -> depth [B, gh·14, gw·14]. */
  forward(tokens: readonly tf.Tensor3D[], gh: number, gw: number): tf.Tensor3D {
    const maps = tokens.map((t, i) => {
      const [b, , d] = t.shape;
      let x = this.projects[i]!.forward(t.reshape([b, gh, gw, d]) as T4);
      const r = this.resizes[i];
      if (r) x = r.forward(x);
      return this.necks[i]!.forward(x);
    });
    const order = [...maps].reverse(); // deepest first
    let x: T4 | null = null;
    for (let j = 0; j < 4; j++) {
      const u = this.fusion[j]!;
      const skip = order[j]!;
      let y: T4 = x === null ? skip : (tf.add(x, u.res1.forward(skip)) as T4);
      y = u.res2.forward(y);
      const next = order[j + 1];
      const size: [number, number] = next ? [next.shape[1], next.shape[2]] : [y.shape[1] * 2, y.shape[2] * 2];
      x = u.out.forward(resize2d(y, size, alignTrue));
    }
    const p = this.c.patchSize;
    let y = this.head[0].forward(x!);
    y = resize2d(y, [gh * p, gw * p], alignTrue);
    y = this.head[2].forward(tf.relu(this.head[1].forward(y)));
    const out = this.c.depthType === 'metric' ? tf.mul(tf.sigmoid(y), this.c.maxDepth) : tf.relu(y);
    const [b, h, w] = out.shape as [number, number, number, number];
    return out.reshape([b, h, w]);
  }
}

// The Stable Diffusion VAE DiT works in (Rombach et al., "High-Resolution Image Synthesis with
// Latent Diffusion Models", 2022), as diffusers' AutoencoderKL defines it (`stabilityai/sd-vae-ft-ema`,
// `-mse`): an encoder to a diagonal Gaussian posterior over 8×-downsampled latents and a decoder
// back to pixels. Checked against an independent float64 torch reference (scripts/make-vae-fixtures.py).
//
//   encoder: conv_in; per level: `layers_per_block` resnets, then (but on the last level) F.pad
//            (0, 1, 0, 1) + 3×3 conv stride 2; mid: resnet, attention, resnet; GroupNorm, SiLU,
//            conv_out to 2·latent channels; quant_conv (1×1) -> mean, logvar (clamped to [-30, 20])
//   decoder: post_quant_conv (1×1); conv_in; mid; per level, widths reversed: layers + 1 resnets, then
//            (but on the last) nearest ×2 upsample + 3×3 conv; GroupNorm, SiLU, conv_out
//   resnet:  x + conv2(SiLU(GN2(conv1(SiLU(GN1(x)))))), x through a 1×1 conv_shortcut when widths differ
//   attention (mid block): one head as wide as the channels over the H·W positions, GroupNorm in
//            front, a residual around it
//
// Activations are NHWC (src/nn/conv.ts). The model only runs frozen, so every stage runs in its own
// tf.tidy and frees its input as soon as the next stage has its output: the peak is a few
// activations of the widest level, not every intermediate of the network. The batch is cut into
// slices (one image by default, as diffusers' `enable_slicing`) by `encodeBatch` / `decodeBatch`.
import { tf } from '../backend/tf.js';
import { attend } from '../nn/attention.js';
import { Conv2dModule, GroupNormModule, LinearModule } from '../nn/modules.js';
import { silu } from '../nn/ops.js';

type T4 = tf.Tensor4D;

export interface VaeConfig {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly blockOutChannels: readonly number[];
  readonly layersPerBlock: number;
  readonly latentChannels: number;
  readonly normGroups: number;
  /** Latents are stored × scalingFactor (SD VAE: 0.18215), after subtracting shiftFactor when set. */
  readonly scalingFactor: number;
  readonly shiftFactor: number;
  readonly midBlockAttention: boolean;
  readonly useQuantConv: boolean;
  readonly usePostQuantConv: boolean;
  /** The image size the VAE was trained at (informational). */
  readonly sampleSize: number;
}

/** Runs each stage on the previous stage's output in its own tidy; frees every intermediate (not `x`). */
function chain(x: T4, stages: readonly ((t: T4) => T4)[]): T4 {
  let cur = x;
  for (const stage of stages) {
    const next = tf.tidy(() => stage(cur));
    if (cur !== x) cur.dispose();
    cur = next;
  }
  return cur === x ? tf.clone(x) : cur;
}

const normAct = (n: GroupNormModule) => (t: T4): T4 => silu(n.forward(t)) as T4;
const conv = (c: Conv2dModule) => (t: T4): T4 => c.forward(t);

export class VaeResnet {
  constructor(
    readonly norm1: GroupNormModule, readonly conv1: Conv2dModule,
    readonly norm2: GroupNormModule, readonly conv2: Conv2dModule,
    readonly shortcut: Conv2dModule | null,
  ) {}

  forward(x: T4): T4 {
    const h = chain(x, [normAct(this.norm1), conv(this.conv1), normAct(this.norm2), conv(this.conv2)]);
    const out = tf.tidy(() => tf.add(this.shortcut ? this.shortcut.forward(x) : x, h) as T4);
    h.dispose();
    return out;
  }

  modules(): (Conv2dModule | GroupNormModule)[] {
    return [this.norm1, this.conv1, this.norm2, this.conv2, ...(this.shortcut ? [this.shortcut] : [])];
  }
}

export class VaeAttention {
  constructor(
    readonly norm: GroupNormModule, readonly q: LinearModule, readonly k: LinearModule,
    readonly v: LinearModule, readonly out: LinearModule,
  ) {}

  forward(x: T4): T4 {
    const [n, h, w, c] = x.shape;
    return tf.tidy(() => {
      const t = this.norm.forward(x).reshape([n * h * w, c]) as tf.Tensor2D; // NHWC is already token-major: [N·HW, C]
      const heads = (m: LinearModule): T4 => m.forward(t).reshape([n, 1, h * w, c]) as T4; // [N, 1 head, HW, C]
      const a = attend(heads(this.q), heads(this.k), heads(this.v), null); // softmax(q kᵀ/√C) v: [N, 1, HW, C]
      const o = this.out.forward(a.reshape([n * h * w, c]) as tf.Tensor2D); // [N·HW, C]
      return tf.add(x, o.reshape([n, h, w, c])) as T4;
    });
  }
}

export class VaeMid {
  constructor(readonly resnet0: VaeResnet, readonly attention: VaeAttention | null, readonly resnet1: VaeResnet) {}

  stages(): ((t: T4) => T4)[] {
    return [(t) => this.resnet0.forward(t), ...(this.attention ? [(t: T4) => this.attention!.forward(t)] : []), (t) => this.resnet1.forward(t)];
  }
}

export interface VaeLevel {
  readonly resnets: readonly VaeResnet[];
  /** Encoder: the stride-2 conv (after a (0, 1, 0, 1) pad); decoder: the conv after the ×2 nearest upsample. */
  readonly resample: Conv2dModule | null;
}

export interface VaeParts {
  readonly encConvIn: Conv2dModule;
  readonly down: readonly VaeLevel[];
  readonly encMid: VaeMid;
  readonly encNormOut: GroupNormModule;
  readonly encConvOut: Conv2dModule;
  readonly quantConv: Conv2dModule | null;
  readonly postQuantConv: Conv2dModule | null;
  readonly decConvIn: Conv2dModule;
  readonly decMid: VaeMid;
  readonly up: readonly VaeLevel[];
  readonly decNormOut: GroupNormModule;
  readonly decConvOut: Conv2dModule;
}

/** nearest ×2 as F.interpolate(scale_factor=2, mode='nearest'): output pixel i reads input ⌊i/2⌋. */
function upsample2(t: T4): T4 {
  const [, h, w] = t.shape;
  return tf.image.resizeNearestNeighbor(t, [2 * h, 2 * w], false, false);
}

export class VaeModel {
  constructor(readonly config: VaeConfig, readonly parts: VaeParts) {}

  /** Downsampling factor between pixels and latents (8 for the SD VAE). */
  get factor(): number {
    return 2 ** (this.config.blockOutChannels.length - 1);
  }

  /** x [N, H, W, 3] in [-1, 1] -> the posterior's mean and log-variance [N, H/f, W/f, latent] (unscaled). */
  encode(x: T4): { mean: T4; logvar: T4 } {
    const p = this.parts;
    const stages: ((t: T4) => T4)[] = [conv(p.encConvIn)];
    for (const level of p.down) {
      for (const r of level.resnets) stages.push((t) => r.forward(t));
      const ds = level.resample;
      if (ds) stages.push((t) => ds.forward(tf.pad(t, [[0, 0], [0, 1], [0, 1], [0, 0]]) as T4));
    }
    stages.push(...p.encMid.stages(), normAct(p.encNormOut), conv(p.encConvOut));
    if (p.quantConv) stages.push(conv(p.quantConv));
    const moments = chain(x, stages);
    const l = this.config.latentChannels;
    const [mean, logvar] = tf.tidy(() => {
      const [m, lv] = tf.split(moments, [l, l], 3) as [T4, T4];
      return [m, tf.clipByValue(lv, -30, 20) as T4];
    });
    moments.dispose();
    return { mean: mean!, logvar: logvar! };
  }

  /** z [N, h, w, latent] (unscaled) -> images [N, f·h, f·w, 3], nominally in [-1, 1]. */
  decode(z: T4): T4 {
    const p = this.parts;
    const stages: ((t: T4) => T4)[] = [];
    if (p.postQuantConv) stages.push(conv(p.postQuantConv));
    stages.push(conv(p.decConvIn), ...p.decMid.stages());
    for (const level of p.up) {
      for (const r of level.resnets) stages.push((t) => r.forward(t));
      const us = level.resample;
      if (us) stages.push((t) => us.forward(upsample2(t)));
    }
    stages.push(normAct(p.decNormOut), conv(p.decConvOut));
    return chain(z, stages);
  }

  /** Every module, for disposal and counting. */
  private modules(): (Conv2dModule | GroupNormModule | LinearModule)[] {
    const p = this.parts;
    const mid = (m: VaeMid): (Conv2dModule | GroupNormModule | LinearModule)[] => [
      ...m.resnet0.modules(), ...(m.attention ? [m.attention.norm, m.attention.q, m.attention.k, m.attention.v, m.attention.out] : []), ...m.resnet1.modules(),
    ];
    const levels = (ls: readonly VaeLevel[]): (Conv2dModule | GroupNormModule)[] => ls.flatMap((l) => [...l.resnets.flatMap((r) => r.modules()), ...(l.resample ? [l.resample] : [])]);
    return [
      p.encConvIn, ...levels(p.down), ...mid(p.encMid), p.encNormOut, p.encConvOut, ...(p.quantConv ? [p.quantConv] : []),
      ...(p.postQuantConv ? [p.postQuantConv] : []), p.decConvIn, ...mid(p.decMid), ...levels(p.up), p.decNormOut, p.decConvOut,
    ];
  }

  parameterCount(): number {
    return this.modules().reduce((s, m) => s + m.weight.size + (m.bias?.size ?? 0), 0);
  }

  dispose(): void {
    for (const m of this.modules()) {
      m.weight.dispose();
      m.bias?.dispose();
    }
  }
}

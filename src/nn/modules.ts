// The modules every model family is built from, and the seam where the PEFT library plugs in.
// A model exposes its linear and norm modules; PEFT methods attach an adapter to a linear module or
// mark parameters trainable; the trainer collects the trainable variables. Linear weights are held
// in kernel layout [in, out] (docs/internals.md); Hugging Face files store [out, in].
import { tf } from '../backend/tf.js';
import { linear } from '../backend/linear.js';
import { conv2d, groupNorm, type Conv2dOptions } from './conv.js';

type T2 = tf.Tensor2D;

/** What a linear layer does in its block: used by `targets: qkv`, DiT's all-linear and the PCA ablation. */
export type LinearRole = 'q' | 'k' | 'v' | 'qkv' | 'attn_out' | 'mlp_in' | 'mlp_gate' | 'mlp_out' | 'adaln' | 'embed_mlp' | 'head' | 'other';

/** Shape-only description of a linear layer: enough to count parameters without allocating weights. */
export interface LinearSpec {
  /** Module path in the Hugging Face checkpoint, e.g. `model.layers.0.self_attn.q_proj`. */
  readonly path: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly hasBias: boolean;
  readonly role: LinearRole;
}

export interface NormSpec {
  readonly path: string;
  readonly features: number;
  readonly hasBias: boolean;
}

/**
 * A per-layer adapter (src/peft/): `forward` returns the adapted output for x [N, in] (base plus
 * delta, as the paper writes it); `merge`/`unmerge` fold the delta into the layer's weight and bias.
 */
export interface LinearAdapter {
  readonly method: string;
  forward(layer: LinearModule, x: T2): T2;
  /** Trainable tensors under their adapter-file names relative to the module (`onelora_b`, `lora_A.weight`). */
  trainable(): ReadonlyMap<string, tf.Variable>;
  /** Frozen tensors saved in the adapter file too (the random compression vector `onelora_c`). */
  buffers(): ReadonlyMap<string, tf.Tensor>;
  merge(layer: LinearModule): void;
  unmerge(layer: LinearModule): void;
  dispose(): void;
}

export class LinearModule implements LinearSpec {
  adapter: LinearAdapter | null = null;
  /** Set by full fine-tuning ('all'): then the weight gets a gradient and x is kept for it. */
  trainWeight = false;
  trainBias = false;
  merged = false;

  constructor(
    readonly path: string,
    readonly role: LinearRole,
    /** [in, out] */
    public weight: tf.Variable<tf.Rank.R2>,
    public bias: tf.Variable<tf.Rank.R1> | null,
  ) {}

  get inFeatures(): number {
    return this.weight.shape[0];
  }
  get outFeatures(): number {
    return this.weight.shape[1];
  }
  get hasBias(): boolean {
    return this.bias !== null;
  }

  /** The frozen (or fully trained) base layer y = x W + β, without any adapter. */
  base(x: T2): T2 {
    return linear(x, this.weight, { bias: this.bias, trainWeight: this.trainWeight, trainBias: this.trainBias });
  }

  /** x [N, in] -> [N, out]; callers reshape activations to 2-D first (rank > 2 matmuls are slow on wasm). */
  forward(x: T2): T2 {
    return this.adapter && !this.merged ? this.adapter.forward(this, x) : this.base(x);
  }

  /** Any [..., in] tensor: flattened to 2-D around the matmul. */
  apply(x: tf.Tensor): tf.Tensor {
    const lead = x.shape.slice(0, -1);
    const y = this.forward(x.reshape([-1, this.inFeatures]) as T2);
    return y.reshape([...lead, this.outFeatures]);
  }
}

export class NormModule implements NormSpec {
  constructor(
    readonly path: string,
    public weight: tf.Variable<tf.Rank.R1>,
    public bias: tf.Variable<tf.Rank.R1> | null,
  ) {}
  get features(): number {
    return this.weight.shape[0];
  }
  get hasBias(): boolean {
    return this.bias !== null;
  }
}

/**
 * torch.nn.Conv2d in NHWC (src/nn/conv.ts): weight HWIO [kh, kw, in/groups, out]. Not a PEFT
 * target (as in PEFT's all-linear); `weight.trainable` decides whether it gets a gradient.
 */
export class Conv2dModule {
  constructor(
    readonly path: string,
    public weight: tf.Variable<tf.Rank.R4>,
    public bias: tf.Variable<tf.Rank.R1> | null,
    readonly opts: Omit<Conv2dOptions, 'bias'> = {},
  ) {}

  get inChannels(): number {
    return this.weight.shape[2] * (this.opts.groups ?? 1);
  }
  get outChannels(): number {
    return this.weight.shape[3];
  }

  /** x [N, H, W, in] -> [N, Ho, Wo, out] */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return conv2d(x, this.weight, { ...this.opts, bias: this.bias });
  }
}

/** torch.nn.GroupNorm in NHWC: a NormModule (so `norms` can train it) with its group count and eps. */
export class GroupNormModule extends NormModule {
  constructor(path: string, weight: tf.Variable<tf.Rank.R1>, bias: tf.Variable<tf.Rank.R1> | null, readonly groups: number, readonly eps: number) {
    super(path, weight, bias);
  }

  /** x [N, H, W, C] -> [N, H, W, C] */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return groupNorm(x, this.groups, this.weight, this.bias, this.eps);
  }
}

/** What the PEFT library, the trainer and the CLI need from every model family. */
export interface AdaptableModel {
  readonly family: 'llama' | 'vit' | 'dit' | 'depth';
  linears(): readonly LinearModule[];
  norms(): readonly NormModule[];
  /**
   * Every parameter under its Hugging Face name, in HF layout semantics: linear weights are
   * returned as stored here ([in, out]); exporters transpose back to [out, in].
   */
  parameters(): ReadonlyMap<string, tf.Variable>;
  /** Paths of the output head / classifier (never adapted by `all-linear`). */
  readonly headPaths: readonly string[];
  dispose(): void;
}

// DiT: the class-conditional latent diffusion transformer of Peebles & Xie, "Scalable Diffusion
// Models with Transformers" (ICCV 2023), as in facebookresearch/DiT models.py. The 1LoRA paper
// fine-tunes DiT-XL/2-256 to Food-101 (DiffFit's settings) and compares FID.
//
//   x_embed = PatchLinear(patchify(latents)) + pos_sincos        [B, T, D], T = (H/p)·(W/p)
//   c       = MLP(sincos_256(t)) + table[y]                      [B, D]   (row num_classes = CFG null class)
//   block:  shift1, scale1, gate1, shift2, scale2, gate2 = adaLN(SiLU(c))
//           x += gate1 · Attn(LN(x)·(1 + scale1) + shift1)
//           x += gate2 · MLP(LN(x)·(1 + scale2) + shift2)        (LN without affine; MLP = fc2 ∘ GELU-tanh ∘ fc1)
//   final:  shift, scale = adaLN(SiLU(c)); out = Linear(LN(x)·(1 + scale) + shift), unpatchified
//
// Latents are NCHW [B, C, H, W] (the layout of diffusers pipelines and DiT's sample.py); the output
// is [B, 2C, H, W] with learn_sigma: ε first, then the variance interpolation values.
// Module paths are the facebookresearch names (fused qkv); dit-load.ts also reads diffusers files.
// The patch embedding (a stride-p convolution, held as a linear over flattened (c, py, px) patches)
// is not in linears(): docs/architecture.md#method-spec's all-linear leaves it out, as PEFT's all-linear leaves convs.
import { tf } from '../backend/tf.js';
import { matmul } from '../backend/linear.js';
import { UserError } from '../errors.js';
import { attend, mergeHeads, splitHeads } from '../nn/attention.js';
import { LinearModule, type AdaptableModel, type LinearRole, type LinearSpec, type NormModule, type NormSpec } from '../nn/modules.js';
import { geluTanh, layerNorm, silu } from '../nn/ops.js';

type T2 = tf.Tensor2D;
type T3 = tf.Tensor3D;
type T4 = tf.Tensor4D;

export interface DitConfig {
  readonly name: string;
  /** Latent height = width (32 for 256-px images through the SD VAE). */
  readonly inputSize: number;
  readonly patchSize: number;
  readonly inChannels: number;
  readonly hidden: number;
  readonly depth: number;
  readonly heads: number;
  readonly mlpRatio: number;
  readonly numClasses: number;
  /** > 0: labels are dropped to the null class during training, and the table has numClasses + 1 rows. */
  readonly classDropout: number;
  /** Output 2·inChannels: ε and the learned-range variance values (DiT's LEARNED_RANGE). */
  readonly learnSigma: boolean;
  /**
   * Denominator shift of the timestep frequencies, exp(-ln(1e4)·i / (128 − shift)): 0 as DiT was
   * trained; diffusers' DiTTransformer2DModel computes with 1, so its layout loads with 1.
   */
  readonly timestepShift: 0 | 1;
  /** eps of the LayerNorm before the MLP: 1e-6 in DiT; diffusers uses its config's norm_eps (1e-5). */
  readonly mlpNormEps: number;
}

/** Every LayerNorm but the pre-MLP one (DiT and diffusers both use 1e-6). */
const NORM_EPS = 1e-6;
const FREQ_DIM = 256;

const base = { patchSize: 2, inChannels: 4, mlpRatio: 4, classDropout: 0.1, learnSigma: true, timestepShift: 0, mlpNormEps: 1e-6 } as const;

export const DIT_PRESETS: Readonly<Record<string, DitConfig>> = Object.freeze({
  // DiT-XL/2 at 256 px: 4×32×32 SD-VAE latents, ImageNet classes (config only: 675 M parameters).
  'dit-xl-2-256': Object.freeze({ ...base, name: 'dit-xl-2-256', inputSize: 32, hidden: 1152, depth: 28, heads: 16, numClasses: 1000 }),
  // Small enough to train on one CPU core in a minute (tests, the tiny-dit-demo preset).
  'tiny-dit': Object.freeze({ ...base, name: 'tiny-dit', inputSize: 8, hidden: 64, depth: 2, heads: 4, numClasses: 10 }),
});

export function validateDitConfig(c: DitConfig, source: string): DitConfig {
  const ints: (keyof DitConfig)[] = ['inputSize', 'patchSize', 'inChannels', 'hidden', 'depth', 'heads', 'numClasses'];
  for (const k of ints) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new UserError(`${source}: '${k}' must be a positive integer, got ${JSON.stringify(v)}`);
  }
  if (c.inputSize % c.patchSize !== 0) throw new UserError(`${source}: inputSize ${c.inputSize} is not a multiple of patchSize ${c.patchSize}`);
  if (c.hidden % c.heads !== 0) throw new UserError(`${source}: hidden ${c.hidden} is not a multiple of heads ${c.heads}`);
  if (c.hidden % 4 !== 0) throw new UserError(`${source}: hidden ${c.hidden} must be a multiple of 4 (2-D sin-cos position embedding)`);
  if (!(c.classDropout >= 0 && c.classDropout < 1)) throw new UserError(`${source}: classDropout must be in [0, 1), got ${c.classDropout}`);
  return Object.freeze({ ...c });
}

const outChannels = (c: DitConfig): number => (c.learnSigma ? 2 * c.inChannels : c.inChannels);
export const tableRows = (c: DitConfig): number => c.numClasses + (c.classDropout > 0 ? 1 : 0);
const mlpHidden = (c: DitConfig): number => Math.floor(c.hidden * c.mlpRatio);

/** Every linear layer in forward order, shapes only. */
export function ditLinearSpecs(c: DitConfig): LinearSpec[] {
  const D = c.hidden;
  const spec = (path: string, inFeatures: number, outFeatures: number, role: LinearRole): LinearSpec => ({ path, inFeatures, outFeatures, hasBias: true, role });
  const out: LinearSpec[] = [spec('t_embedder.mlp.0', FREQ_DIM, D, 'embed_mlp'), spec('t_embedder.mlp.2', D, D, 'embed_mlp')];
  for (let i = 0; i < c.depth; i++) {
    const b = `blocks.${i}`;
    out.push(
      spec(`${b}.adaLN_modulation.1`, D, 6 * D, 'adaln'),
      spec(`${b}.attn.qkv`, D, 3 * D, 'qkv'),
      spec(`${b}.attn.proj`, D, D, 'attn_out'),
      spec(`${b}.mlp.fc1`, D, mlpHidden(c), 'mlp_in'),
      spec(`${b}.mlp.fc2`, mlpHidden(c), D, 'mlp_out'),
    );
  }
  out.push(spec('final_layer.adaLN_modulation.1', D, 2 * D, 'adaln'), spec('final_layer.linear', D, c.patchSize ** 2 * outChannels(c), 'other'));
  return out;
}

export interface DitDescription {
  readonly family: 'dit';
  readonly name: string;
  readonly linears: LinearSpec[];
  /** DiT's LayerNorms have no affine parameters: nothing for `norms` to train. */
  readonly norms: NormSpec[];
  /** Empty: the final layer's linears are in all-linear (docs/architecture.md#method-spec), and DiT has no classifier. */
  readonly headPaths: string[];
  /** Every parameter: linears, the patch embedding and the class table (not the fixed position table). */
  readonly totalParams: number;
}

export function describeDit(config: DitConfig): DitDescription {
  const c = validateDitConfig(config, config.name);
  const linears = ditLinearSpecs(c);
  const patch = c.inChannels * c.patchSize ** 2 * c.hidden + c.hidden;
  const totalParams = linears.reduce((a, l) => a + l.inFeatures * l.outFeatures + (l.hasBias ? l.outFeatures : 0), 0) + patch + tableRows(c) * c.hidden;
  return { family: 'dit', name: c.name, linears, norms: [], headPaths: [], totalParams };
}

/** DiT's fixed 2-D sin-cos table [T, D], token = row·G + col: channels [0, D/2) encode the column, [D/2, D) the row. */
export function posEmbedTable(hidden: number, grid: number): Float32Array {
  const out = new Float32Array(grid * grid * hidden);
  const quarter = hidden / 4;
  for (let r = 0; r < grid; r++) {
    for (let col = 0; col < grid; col++) {
      const row = out.subarray((r * grid + col) * hidden, (r * grid + col + 1) * hidden);
      for (let i = 0; i < quarter; i++) {
        const omega = 1 / 10000 ** (i / quarter);
        row[i] = Math.sin(col * omega);
        row[quarter + i] = Math.cos(col * omega);
        row[2 * quarter + i] = Math.sin(r * omega);
        row[3 * quarter + i] = Math.cos(r * omega);
      }
    }
  }
  return out;
}

/** [cos(t·f_i), sin(t·f_i)] with f_i = exp(−ln(1e4)·i/(128 − shift)), computed in float64 on the host. */
function timestepFrequencies(t: ArrayLike<number>, shift: 0 | 1): T2 {
  const half = FREQ_DIM / 2;
  const out = new Float32Array(t.length * FREQ_DIM);
  for (let b = 0; b < t.length; b++) {
    for (let i = 0; i < half; i++) {
      const arg = t[b]! * Math.exp((-Math.log(10000) * i) / (half - shift));
      out[b * FREQ_DIM + i] = Math.cos(arg);
      out[b * FREQ_DIM + half + i] = Math.sin(arg);
    }
  }
  return tf.tensor2d(out, [t.length, FREQ_DIM]);
}

/** x·(1 + scale) + shift with x [B, T, D] and shift, scale [B, D]. */
function modulate(x: tf.Tensor, shift: T2, scale: T2): tf.Tensor {
  const [B, D] = shift.shape;
  return tf.add(tf.mul(x, tf.add(scale.reshape([B, 1, D]), 1)), shift.reshape([B, 1, D]));
}

export class DitAttention {
  constructor(readonly qkv: LinearModule, readonly proj: LinearModule, readonly heads: number) {}

  /** x [B, T, D] -> [B, T, D] */
  forward(x: T3): T3 {
    const [B, T, D] = x.shape;
    const H = this.heads;
    const hd = D / H;
    const qkv = this.qkv.forward(x.reshape([B * T, D]) as T2); // [B·T, D] -> [B·T, 3D], rows q, k, v
    const [q, k, v] = tf.split(qkv, 3, 1).map((z) => splitHeads(z as T2, B, T, H, hd)); // 3 × [B, H, T, hd]
    const merged = mergeHeads(attend(q!, k!, v!, null)); // [B, H, T, hd] -> [B·T, D]
    return this.proj.forward(merged).reshape([B, T, D]);
  }
}

export class DitMlp {
  constructor(readonly fc1: LinearModule, readonly fc2: LinearModule) {}

  /** x [B·T, D] -> [B·T, D] */
  forward(x: T2): T2 {
    return this.fc2.forward(geluTanh(this.fc1.forward(x)) as T2);
  }
}

export class DitBlock {
  constructor(readonly adaLN: LinearModule, readonly attn: DitAttention, readonly mlp: DitMlp, readonly mlpNormEps: number) {}

  /** x [B, T, D], sc = SiLU(c) [B, D] -> [B, T, D] */
  forward(x: T3, sc: T2): T3 {
    const [B, T, D] = x.shape;
    const [shift1, scale1, gate1, shift2, scale2, gate2] = tf.split(this.adaLN.forward(sc), 6, 1) as T2[]; // [B, 6D] -> 6 × [B, D]
    const a = this.attn.forward(modulate(layerNorm(x, null, null, NORM_EPS), shift1!, scale1!) as T3);
    const h = tf.add(x, tf.mul(gate1!.reshape([B, 1, D]), a)) as T3;
    const m = modulate(layerNorm(h, null, null, this.mlpNormEps), shift2!, scale2!).reshape([B * T, D]) as T2; // [B, T, D] -> [B·T, D]
    return tf.add(h, tf.mul(gate2!.reshape([B, 1, D]), this.mlp.forward(m).reshape([B, T, D]))) as T3;
  }
}

/** The parts DitModel is assembled from (dit-load.ts builds them from a checkpoint or an init). */
export interface DitParts {
  readonly xEmbedder: LinearModule;
  readonly tMlp: readonly [LinearModule, LinearModule];
  /** [numClasses (+1 null), D] */
  readonly yTable: tf.Variable<tf.Rank.R2>;
  readonly blocks: readonly DitBlock[];
  readonly finalAdaLN: LinearModule;
  readonly finalLinear: LinearModule;
}

export class DitModel implements AdaptableModel {
  readonly family = 'dit' as const;
  readonly headPaths: readonly string[] = [];
  /** [T, D], fixed (not a parameter). */
  readonly posEmbed: T2;

  constructor(
    readonly config: DitConfig,
    readonly parts: DitParts,
    /** Parameters created for the task rather than loaded (a class table resized to a new dataset's classes). */
    readonly created: readonly string[] = [],
  ) {
    const grid = config.inputSize / config.patchSize;
    this.posEmbed = tf.tensor2d(posEmbedTable(config.hidden, grid), [grid * grid, config.hidden]);
  }

  linears(): readonly LinearModule[] {
    const p = this.parts;
    const blocks = p.blocks.flatMap((b) => [b.adaLN, b.attn.qkv, b.attn.proj, b.mlp.fc1, b.mlp.fc2]);
    return [...p.tMlp, ...blocks, p.finalAdaLN, p.finalLinear];
  }

  norms(): readonly NormModule[] {
    return [];
  }

  parameters(): ReadonlyMap<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const l of [this.parts.xEmbedder, ...this.linears()]) {
      out.set(`${l.path}.weight`, l.weight);
      if (l.bias) out.set(`${l.path}.bias`, l.bias);
    }
    out.set('y_embedder.embedding_table.weight', this.parts.yTable);
    return out;
  }

  /** The label fed to the model for "no class" (classifier-free guidance). */
  get nullClass(): number {
    if (this.config.classDropout <= 0) throw new UserError(`${this.config.name}: classDropout is 0, so the model has no null class for classifier-free guidance`);
    return this.config.numClasses;
  }

  /** latents [B, C, H, W] (NCHW), timesteps t [B], labels y [B] (numClasses = null) -> [B, outC, H, W] */
  forward(latents: T4, t: ArrayLike<number>, y: ArrayLike<number>): T4 {
    const c = this.config;
    const [B, C, Hh, W] = latents.shape;
    if (C !== c.inChannels || Hh !== c.inputSize || W !== c.inputSize) {
      throw new UserError(`${c.name}: latents [${latents.shape.join(', ')}] do not match [B, ${c.inChannels}, ${c.inputSize}, ${c.inputSize}]`);
    }
    if (t.length !== B || y.length !== B) throw new UserError(`${c.name}: ${B} latents but ${t.length} timesteps and ${y.length} labels`);
    const rows = tableRows(c);
    for (let i = 0; i < B; i++) {
      if (!Number.isInteger(y[i]) || y[i]! < 0 || y[i]! >= rows) throw new UserError(`${c.name}: label ${y[i]} at ${i} is outside [0, ${rows})`);
    }
    return tf.tidy(() => {
      const p = c.patchSize;
      const G = c.inputSize / p;
      const T = G * G;
      const D = c.hidden;
      const patches = latents
        .reshape([B, C, G, p, G, p]) // [B, C, H, W] -> [B, C, G, p, G, p]
        .transpose([0, 2, 4, 1, 3, 5]) // -> [B, G, G, C, p, p]
        .reshape([B * T, C * p * p]) as T2; // -> [B·T, C·p·p]
      const x0 = tf.add(this.parts.xEmbedder.forward(patches).reshape([B, T, D]), this.posEmbed) as T3; // [B, T, D]
      const cond = this.conditioning(t, y);
      const sc = silu(cond) as T2; // [B, D]
      let x = x0;
      for (const block of this.parts.blocks) x = block.forward(x, sc);
      const [shift, scale] = tf.split(this.parts.finalAdaLN.forward(sc), 2, 1) as [T2, T2]; // [B, 2D] -> 2 × [B, D]
      const h = modulate(layerNorm(x, null, null, NORM_EPS), shift, scale).reshape([B * T, D]) as T2;
      const out = outChannels(c);
      return this.parts.finalLinear
        .forward(h) // [B·T, D] -> [B·T, p·p·outC]
        .reshape([B, G, G, p, p, out])
        .transpose([0, 5, 1, 3, 2, 4]) // [B, G(h), G(w), p, q, C] -> [B, C, G, p, G, q]
        .reshape([B, out, c.inputSize, c.inputSize]) as T4;
    });
  }

  /** c = MLP(sincos(t)) + table[y]: [B, D] */
  conditioning(t: ArrayLike<number>, y: ArrayLike<number>): T2 {
    return tf.tidy(() => {
      const [l1, l2] = this.parts.tMlp;
      const h = l1.forward(timestepFrequencies(t, this.config.timestepShift)); // [B, 256] -> [B, D]
      const temb = l2.forward(silu(h) as T2); // [B, D]
      const ids = tf.tensor1d(Array.from(y), 'int32');
      const table = this.parts.yTable;
      // A trainable table (full fine-tuning, DiffFit) takes its gradient through a one-hot matmul.
      const yemb = table.trainable ? matmul(tf.oneHot(ids, table.shape[0]).toFloat() as T2, table) : (tf.gather(table, ids) as T2); // [B, rows] · [rows, D]
      return tf.add(temb, yemb) as T2;
    });
  }

  /**
   * Classifier-free guidance (DiT's forward_with_cfg, applied to all ε channels): one pass over
   * [x; x] with [y; null], ε = ε_uncond + g·(ε_cond − ε_uncond); the variance values come from the
   * conditional half. latents [B, C, H, W] -> [B, outC, H, W].
   */
  forwardWithCfg(latents: T4, t: ArrayLike<number>, y: ArrayLike<number>, cfgScale: number): T4 {
    const nul = this.nullClass;
    const B = latents.shape[0];
    return tf.tidy(() => {
      const out = this.forward(tf.concat([latents, latents]) as T4, [...Array.from(t), ...Array.from(t)], [...Array.from(y), ...new Array<number>(B).fill(nul)]);
      const C = this.config.inChannels;
      const [cond, uncond] = tf.split(out, 2, 0) as [T4, T4]; // [2B, outC, H, W] -> 2 × [B, outC, H, W]
      const epsC = cond.slice([0, 0, 0, 0], [-1, C, -1, -1]);
      const epsU = uncond.slice([0, 0, 0, 0], [-1, C, -1, -1]);
      const eps = tf.add(epsU, tf.mul(tf.sub(epsC, epsU), cfgScale));
      const rest = cond.slice([0, C, 0, 0], [-1, -1, -1, -1]);
      return (this.config.learnSigma ? tf.concat([eps, rest], 1) : eps) as T4;
    });
  }

  dispose(): void {
    for (const v of this.parameters().values()) v.dispose();
    this.posEmbed.dispose();
  }
}

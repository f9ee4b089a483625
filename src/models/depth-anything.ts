// Depth Anything: a DINOv2 encoder (Oquab et al. 2023; pre-LN ViT blocks with LayerScale, patch 14)
// whose 4 selected layers, each through the final LayerNorm and without the CLS token, feed the
// DPT head (depth-dpt.ts). Read top to bottom: embeddings → block → model. One code path serves
// both key layouts: the original release's fused qkv linear, or transformers' separate q, k, v
// (depth-anything-config.ts#depthNames); the PEFT methods see whichever linears the file has.
import { tf } from '../backend/tf.js';
import { matmul } from '../backend/linear.js';
import { attend, mergeHeads, splitHeads } from '../nn/attention.js';
import { LinearModule, NormModule, type AdaptableModel, type LinearRole } from '../nn/modules.js';
import { gelu, layerNorm } from '../nn/ops.js';
import { resize2d } from '../nn/resize.js';
import { depthConfigToHf, depthLayout, depthNames, type DepthConfig } from './depth-anything-config.js';
import { DptHead } from './depth-dpt.js';
import { type ModelLayout, paramOf, type ParamTable } from './layout.js';

type T1 = tf.Tensor1D;
type T2 = tf.Tensor2D;
type T3 = tf.Tensor3D;

const get = <R extends tf.Rank>(params: ParamTable, name: string): tf.Variable<R> => paramOf<R>(params, name, 'Depth Anything');

const linearModule = (params: ParamTable, path: string, role: LinearRole): LinearModule =>
  new LinearModule(path, role, get(params, `${path}.weight`), get(params, `${path}.bias`));
const normModule = (params: ParamTable, path: string): NormModule => new NormModule(path, get(params, `${path}.weight`), get(params, `${path}.bias`));

class Embeddings {
  private readonly cls: tf.Variable<tf.Rank.R3>;
  private readonly pos: tf.Variable<tf.Rank.R3>;
  private readonly projW: tf.Variable<tf.Rank.R4>;
  private readonly projB: tf.Variable<tf.Rank.R1>;

  constructor(private readonly c: DepthConfig, params: ParamTable) {
    const n = depthNames(c.keyLayout);
    this.cls = get(params, n.cls);
    this.pos = get(params, n.pos);
    this.projW = get(params, `${n.patch}.weight`);
    this.projB = get(params, `${n.patch}.bias`);
  }

  /** pixels [B, H, W, 3] (H, W multiples of the patch) -> tokens [B, 1 + gh·gw, D] */
  forward(pixels: tf.Tensor4D): T3 {
    const [b, height, width, ch] = pixels.shape;
    const { patchSize: p, hiddenSize: d } = this.c;
    const gh = Math.floor(height / p);
    const gw = Math.floor(width / p);
    const img = height === gh * p && width === gw * p ? pixels : tf.slice(pixels, [0, 0, 0, 0], [b, gh * p, gw * p, ch]);
    // The stride-p conv as one matmul over flattened patches (as in vit.ts).
    const patches = tf.transpose(img.reshape([b, gh, p, gw, p, ch]), [0, 1, 3, 2, 4, 5]).reshape([b * gh * gw, p * p * ch]) as T2;
    const kernel = tf.transpose(this.projW, [2, 3, 1, 0]).reshape([p * p * ch, d]) as T2; // [D, C, p, p] -> [p·p·C, D]
    const x = tf.add(matmul(patches, kernel), this.projB).reshape([b, gh * gw, d]);
    return tf.add(tf.concat([tf.tile(this.cls, [b, 1, 1]), x], 1), this.positions(gh, gw, height === width)) as T3;
  }

  /**
   * Position table [1, 1 + gh·gw, D]: as stored for the trained square grid, else its patch part
   * resized bicubically (align_corners false), by output size (transformers) or by scale factor
   * (g + 0.1)/M (the original DINOv2 code, whose offset avoids floating-point rounding of the size).
   */
  private positions(gh: number, gw: number, square: boolean): T3 {
    const n = this.pos.shape[1] - 1;
    if (n === gh * gw && square) return this.pos;
    const m = Math.round(Math.sqrt(n));
    const d = this.c.hiddenSize;
    const [clsPos, patchPos] = tf.split(this.pos, [1, n], 1) as [T3, T3];
    const grid = patchPos.reshape([1, m, m, d]) as tf.Tensor4D;
    const scaleFactor = this.c.posInterp === 'offset' ? ([(gh + 0.1) / m, (gw + 0.1) / m] as const) : undefined;
    const resized = resize2d(grid, [gh, gw], { mode: 'bicubic', alignCorners: false, scaleFactor }).reshape([1, gh * gw, d]);
    return tf.concat([clsPos, resized], 1) as T3;
  }
}

/** x + γ1 ⊙ attn(LN(x)), then x + γ2 ⊙ mlp(LN(x)): DINOv2's block with LayerScale. */
class Block {
  readonly norm1: NormModule;
  readonly norm2: NormModule;
  /** The fused qkv linear, or q, k, v. */
  readonly qkv: readonly LinearModule[];
  readonly proj: LinearModule;
  readonly fc1: LinearModule;
  readonly fc2: LinearModule;
  private readonly ls1: tf.Variable<tf.Rank.R1>;
  private readonly ls2: tf.Variable<tf.Rank.R1>;

  constructor(private readonly c: DepthConfig, params: ParamTable, i: number) {
    const n = depthNames(c.keyLayout).block(i);
    this.norm1 = normModule(params, n.norm1);
    this.qkv = n.qkv ? [linearModule(params, n.qkv, 'qkv')] : [linearModule(params, n.q, 'q'), linearModule(params, n.k, 'k'), linearModule(params, n.v, 'v')];
    this.proj = linearModule(params, n.proj, 'attn_out');
    this.norm2 = normModule(params, n.norm2);
    this.fc1 = linearModule(params, n.fc1, 'mlp_in');
    this.fc2 = linearModule(params, n.fc2, 'mlp_out');
    this.ls1 = get(params, n.ls1);
    this.ls2 = get(params, n.ls2);
  }

  private attention(x: T2, b: number, t: number): T2 {
    const h = this.c.numHeads;
    const d = this.c.hiddenSize;
    // The fused [D, 3D] output is q | k | v, each [D] (timm's qkv reshaped to (3, H, hd)).
    const [q, k, v] = this.qkv.length === 1 ? (tf.split(this.qkv[0]!.forward(x), 3, 1) as T2[]) : this.qkv.map((l) => l.forward(x));
    const heads = (y: T2): tf.Tensor4D => splitHeads(y, b, t, h, d / h);
    return this.proj.forward(mergeHeads(attend(heads(q!), heads(k!), heads(v!), null)));
  }

  forward(x: T2, b: number, t: number): T2 {
    const ln = (m: NormModule, y: T2): T2 => layerNorm(y, m.weight, m.bias as T1, this.c.layerNormEps);
    const h = tf.add(x, tf.mul(this.attention(ln(this.norm1, x), b, t), this.ls1)) as T2;
    return tf.add(h, tf.mul(this.fc2.forward(gelu(this.fc1.forward(ln(this.norm2, h))) as T2), this.ls2)) as T2;
  }
}

export class DepthAnythingModel implements AdaptableModel {
  readonly family = 'depth' as const;
  readonly layout: ModelLayout;
  readonly headPaths: readonly string[] = [];
  private readonly embeddings: Embeddings;
  private readonly blocks: Block[] = [];
  private readonly finalNorm: NormModule;
  private readonly head: DptHead;

  constructor(
    readonly config: DepthConfig,
    private readonly params: ParamTable,
    readonly hfConfigBase: Readonly<Record<string, unknown>> = {},
  ) {
    this.layout = depthLayout(config);
    this.embeddings = new Embeddings(config, params);
    for (let i = 0; i < config.numLayers; i++) this.blocks.push(new Block(config, params, i));
    this.finalNorm = normModule(params, depthNames(config.keyLayout).finalNorm);
    this.head = new DptHead(config, params);
  }

  /**
   * pixels [B, H, W, 3], normalised, H and W multiples of the patch size -> depth [B, H, W]
   * (relative: disparity-like, up to scale; metric: metres).
   */
  depth(pixels: tf.Tensor4D): T3 {
    const [, height, width] = pixels.shape;
    const p = this.config.patchSize;
    const gh = Math.floor(height / p);
    const gw = Math.floor(width / p);
    const x0 = this.embeddings.forward(pixels);
    const [b, t, d] = x0.shape;
    let x = x0.reshape([b * t, d]) as T2;
    const taken: T3[] = [];
    const fn = this.finalNorm;
    for (let i = 0; i < this.blocks.length && taken.length < this.config.outIndices.length; i++) {
      x = this.blocks[i]!.forward(x, b, t);
      if (this.config.outIndices.includes(i)) {
        const normed = layerNorm(x, fn.weight, fn.bias as T1, this.config.layerNormEps).reshape([b, t, d]);
        taken.push(tf.slice(normed, [0, 1, 0], [b, t - 1, d]) as T3); // drop CLS
      }
    }
    return this.head.forward(taken, gh, gw);
  }

  linears(): readonly LinearModule[] {
    return this.blocks.flatMap((b) => [...b.qkv, b.proj, b.fc1, b.fc2]);
  }

  norms(): readonly NormModule[] {
    return [...this.blocks.flatMap((b) => [b.norm1, b.norm2]), this.finalNorm];
  }

  parameters(): ReadonlyMap<string, tf.Variable> {
    return this.params;
  }

  toHfConfig(): Record<string, unknown> {
    return depthConfigToHf(this.config, this.hfConfigBase);
  }

  dispose(): void {
    this.head.dispose();
    for (const v of this.params.values()) v.dispose();
  }
}

// Vision Transformer (Dosovitskiy et al. 2021, arXiv 2010.11929) in Hugging Face's
// ViTForImageClassification layout: p×p patches projected to D (the conv of HF, done as one
// matmul over flattened patches), a CLS token, learned position embeddings (bilinearly
// interpolated for other image sizes), pre-LN blocks with a GELU MLP, a final LayerNorm and a
// linear classifier on the CLS token. DINOv2 options: layer scale and register tokens.
// Read top to bottom: embeddings → attention → MLP → block → model.
import { tf } from '../backend/tf.js';
import { matmul } from '../backend/linear.js';
import { attend, mergeHeads, splitHeads } from '../nn/attention.js';
import { type ModelLayout, paramOf, type ParamTable } from './layout.js';
import { LinearModule, NormModule, type AdaptableModel, type LinearRole } from '../nn/modules.js';
import { gelu, geluTanh, layerNorm } from '../nn/ops.js';
import { vitConfigToHf, vitLayout, type VitConfig } from './vit-config.js';

type T1 = tf.Tensor1D;
type T2 = tf.Tensor2D;
type T3 = tf.Tensor3D;

const param = <R extends tf.Rank>(params: ParamTable, name: string): tf.Variable<R> => paramOf<R>(params, name, 'ViT');

function linearModule(params: ParamTable, path: string, role: LinearRole, hasBias: boolean): LinearModule {
  return new LinearModule(path, role, param(params, `${path}.weight`), hasBias ? param(params, `${path}.bias`) : null);
}

function normModule(params: ParamTable, path: string): NormModule {
  return new NormModule(path, param(params, `${path}.weight`), param(params, `${path}.bias`));
}

class VitEmbeddings {
  private readonly cls: tf.Variable<tf.Rank.R3>;
  private readonly pos: tf.Variable<tf.Rank.R3>;
  private readonly projW: tf.Variable<tf.Rank.R4>;
  private readonly projB: tf.Variable<tf.Rank.R1>;
  private readonly registers: tf.Variable<tf.Rank.R3> | null;

  constructor(
    private readonly c: VitConfig,
    params: ParamTable,
  ) {
    const e = 'vit.embeddings';
    this.cls = param(params, `${e}.cls_token`);
    this.pos = param(params, `${e}.position_embeddings`);
    this.projW = param(params, `${e}.patch_embeddings.projection.weight`);
    this.projB = param(params, `${e}.patch_embeddings.projection.bias`);
    this.registers = c.numRegisterTokens > 0 ? param(params, `${e}.register_tokens`) : null;
  }

  /** pixels [B, H, W, C] -> tokens [B, 1 + R + gh·gw, D] */
  forward(pixels: tf.Tensor4D): T3 {
    const [b, height, width, ch] = pixels.shape;
    const { patchSize: p, hiddenSize: d } = this.c;
    const gh = Math.floor(height / p);
    const gw = Math.floor(width / p);
    // Like a stride-p conv, trailing rows/columns that do not fill a patch are dropped.
    const img = height === gh * p && width === gw * p ? pixels : tf.slice(pixels, [0, 0, 0, 0], [b, gh * p, gw * p, ch]);
    const patches = tf
      .transpose(img.reshape([b, gh, p, gw, p, ch]), [0, 1, 3, 2, 4, 5]) // [B, gh, p, gw, p, C] -> [B, gh, gw, p, p, C]
      .reshape([b * gh * gw, p * p * ch]) as T2;
    // HF conv weight [D, C, p, p] -> [p, p, C, D] -> [p·p·C, D], matching the patch flattening order.
    const kernel = tf.transpose(this.projW, [2, 3, 1, 0]).reshape([p * p * ch, d]) as T2;
    const x = tf.add(matmul(patches, kernel), this.projB).reshape([b, gh * gw, d]); // [B·gh·gw, p·p·C] · [p·p·C, D]
    const cls = tf.tile(this.cls, [b, 1, 1]); // [B, 1, D]
    let tokens = tf.add(tf.concat([cls, x], 1), this.positions(gh, gw)) as T3; // [B, 1 + gh·gw, D]
    if (this.registers) {
      const regs = tf.tile(this.registers, [b, 1, 1]); // [B, R, D]
      const [head, rest] = tf.split(tokens, [1, gh * gw], 1);
      tokens = tf.concat([head as T3, regs, rest as T3], 1);
    }
    return tokens;
  }

  /**
   * Position table [1, 1 + gh·gw, D]: as stored when the grid matches, else the patch part resized
   * bilinearly (half-pixel centres, = torch's align_corners=False) from its square grid.
   * Hugging Face's interpolate_pos_encoding uses bicubic; the difference is documented in docs/models.md.
   */
  private positions(gh: number, gw: number): T3 {
    const n = this.pos.shape[1] - 1;
    if (n === gh * gw) return this.pos;
    const g = Math.round(Math.sqrt(n));
    const d = this.c.hiddenSize;
    const [clsPos, patchPos] = tf.split(this.pos, [1, n], 1) as [T3, T3];
    const grid = patchPos.reshape([1, g, g, d]) as tf.Tensor4D; // [1, N, D] -> [1, g, g, D]
    const resized = tf.image.resizeBilinear(grid, [gh, gw], false, true).reshape([1, gh * gw, d]);
    return tf.concat([clsPos, resized], 1) as T3;
  }
}

class VitSelfAttention {
  readonly query: LinearModule;
  readonly key: LinearModule;
  readonly value: LinearModule;
  readonly out: LinearModule;

  constructor(
    private readonly c: VitConfig,
    params: ParamTable,
    prefix: string,
  ) {
    this.query = linearModule(params, `${prefix}.attention.query`, 'q', c.qkvBias);
    this.key = linearModule(params, `${prefix}.attention.key`, 'k', c.qkvBias);
    this.value = linearModule(params, `${prefix}.attention.value`, 'v', c.qkvBias);
    this.out = linearModule(params, `${prefix}.output.dense`, 'attn_out', true);
  }

  /** x [B·T, D] -> [B·T, D], bidirectional (no mask). */
  forward(x: T2, b: number, t: number): T2 {
    const h = this.c.numHeads;
    const hd = this.c.hiddenSize / h;
    const q = splitHeads(this.query.forward(x), b, t, h, hd); // [B, H, T, hd]
    const k = splitHeads(this.key.forward(x), b, t, h, hd);
    const v = splitHeads(this.value.forward(x), b, t, h, hd);
    return this.out.forward(mergeHeads(attend(q, k, v, null))); // [B·T, D]
  }
}

/** fc2(act(fc1(x))): `intermediate.dense` then `output.dense` in HF's names. x [B·T, D] -> [B·T, D] */
class VitMlp {
  readonly fc1: LinearModule;
  readonly fc2: LinearModule;

  constructor(
    private readonly c: VitConfig,
    params: ParamTable,
    prefix: string,
  ) {
    this.fc1 = linearModule(params, `${prefix}.intermediate.dense`, 'mlp_in', true);
    this.fc2 = linearModule(params, `${prefix}.output.dense`, 'mlp_out', true);
  }

  forward(x: T2): T2 {
    const h = this.fc1.forward(x); // [B·T, I]
    return this.fc2.forward((this.c.hiddenAct === 'gelu' ? gelu(h) : geluTanh(h)) as T2);
  }
}

/** Pre-LN block: x + γ1 ⊙ attn(LN(x)), then x + γ2 ⊙ mlp(LN(x)) (γ = layer scale, DINOv2 only). */
class VitBlock {
  readonly normBefore: NormModule;
  readonly attn: VitSelfAttention;
  readonly normAfter: NormModule;
  readonly mlp: VitMlp;
  private readonly scale1: tf.Variable<tf.Rank.R1> | null;
  private readonly scale2: tf.Variable<tf.Rank.R1> | null;

  constructor(
    private readonly c: VitConfig,
    params: ParamTable,
    i: number,
  ) {
    const p = `vit.encoder.layer.${i}`;
    this.normBefore = normModule(params, `${p}.layernorm_before`);
    this.attn = new VitSelfAttention(c, params, `${p}.attention`);
    this.normAfter = normModule(params, `${p}.layernorm_after`);
    this.mlp = new VitMlp(c, params, p);
    this.scale1 = c.layerScaleInit !== null ? param(params, `${p}.layer_scale1.lambda1`) : null;
    this.scale2 = c.layerScaleInit !== null ? param(params, `${p}.layer_scale2.lambda1`) : null;
  }

  forward(x: T2, b: number, t: number): T2 {
    const ln = (m: NormModule, y: T2): T2 => layerNorm(y, m.weight, m.bias as T1, this.c.layerNormEps);
    const scaled = (y: T2, g: T1 | null): T2 => (g ? tf.mul(y, g) : y);
    const h = tf.add(x, scaled(this.attn.forward(ln(this.normBefore, x), b, t), this.scale1)) as T2;
    return tf.add(h, scaled(this.mlp.forward(ln(this.normAfter, h)), this.scale2)) as T2;
  }
}

export class VitModel implements AdaptableModel {
  readonly family = 'vit' as const;
  readonly layout: ModelLayout;
  readonly headPaths: readonly string[];
  private readonly embeddings: VitEmbeddings;
  private readonly blocks: VitBlock[] = [];
  private readonly finalNorm: NormModule;
  private readonly classifier: LinearModule | null;

  constructor(
    readonly config: VitConfig,
    private readonly params: ParamTable,
    readonly hfConfigBase: Readonly<Record<string, unknown>> = {},
  ) {
    this.layout = vitLayout(config);
    this.headPaths = this.layout.headPaths;
    this.embeddings = new VitEmbeddings(config, params);
    for (let i = 0; i < config.numLayers; i++) this.blocks.push(new VitBlock(config, params, i));
    this.finalNorm = normModule(params, 'vit.layernorm');
    this.classifier = config.numLabels > 0 ? linearModule(params, 'classifier', 'head', true) : null;
  }

  /** pixels [B, H, W, C] (normalised) -> the final LayerNorm output [B, T, D] */
  features(pixels: tf.Tensor4D): T3 {
    const x0 = this.embeddings.forward(pixels);
    const [b, t, d] = x0.shape;
    let x = x0.reshape([b * t, d]) as T2; // [B·T, D]: every linear layer sees 2-D activations
    for (const block of this.blocks) x = block.forward(x, b, t);
    return layerNorm(x, this.finalNorm.weight, this.finalNorm.bias as T1, this.config.layerNormEps).reshape([b, t, d]);
  }

  /** pixels [B, H, W, C] -> logits [B, numLabels] from the CLS token. */
  logits(pixels: tf.Tensor4D): T2 {
    if (!this.classifier) throw new Error('ViT: this model has no classifier (numLabels = 0)');
    const head = this.classifier;
    return tf.tidy(() => {
      const f = this.features(pixels);
      const [b, , d] = f.shape;
      const cls = tf.slice(f, [0, 0, 0], [b, 1, d]).reshape([b, d]) as T2; // [B, D]
      return head.forward(cls);
    });
  }

  linears(): readonly LinearModule[] {
    const out: LinearModule[] = [];
    for (const b of this.blocks) out.push(b.attn.query, b.attn.key, b.attn.value, b.attn.out, b.mlp.fc1, b.mlp.fc2);
    if (this.classifier) out.push(this.classifier);
    return out;
  }

  norms(): readonly NormModule[] {
    const out: NormModule[] = [];
    for (const b of this.blocks) out.push(b.normBefore, b.normAfter);
    out.push(this.finalNorm);
    return out;
  }

  parameters(): ReadonlyMap<string, tf.Variable> {
    return this.params;
  }

  toHfConfig(): Record<string, unknown> {
    return vitConfigToHf(this.config, this.hfConfigBase);
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
  }
}

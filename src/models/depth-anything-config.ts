// Depth Anything (Yang et al. 2024, arXiv 2401.10891; V2 arXiv 2406.09414): a DINOv2 ViT encoder
// and a DPT head (Ranftl et al. 2021). Its configuration, the describe-only presets (S/B/L at 518
// px) and the parameter layout, in either of the two key layouts users have:
//   'original' — the authors' release (`pretrained.blocks.N.attn.qkv`, fused q/k/v, `depth_head.*`),
//   'hf'       — transformers' DepthAnythingForDepthEstimation (`backbone.encoder.layer.N.attention.attention.query`, `neck.*`, `head.*`).
// The same weights in either layout compute the same depth, except for how the position table is
// resized to another patch grid (`posInterp`, docs/depth.md#position-embeddings).
import { UserError } from '../errors.js';
import { HfConfigReader, linearSpec, type ModelLayout, type ParamSpec } from './layout.js';
import type { LinearSpec, NormSpec } from '../nn/modules.js';

export type DepthKeyLayout = 'original' | 'hf';

export interface DepthConfig {
  readonly family: 'depth';
  readonly keyLayout: DepthKeyLayout;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly intermediateSize: number;
  readonly patchSize: number;
  /** The size the position table was trained for (518: a 37×37 grid). */
  readonly imageSize: number;
  readonly layerNormEps: number;
  /** Encoder blocks (0-based) whose normalised outputs feed the head. */
  readonly outIndices: readonly number[];
  /** DPT: channels of the four reassembled maps, and of the fusion stage. */
  readonly neckSizes: readonly number[];
  readonly reassembleFactors: readonly number[];
  readonly fusionSize: number;
  readonly headHiddenSize: number;
  /** relative: ReLU output (disparity up to scale); metric: sigmoid × maxDepth (metres). */
  readonly depthType: 'relative' | 'metric';
  readonly maxDepth: number;
  /**
   * How the position table is resized to a g_h×g_w grid (bicubic, align_corners false): 'offset' as
   * the original code (scale_factor (g + 0.1)/M), 'size' as current transformers (output size g).
   */
  readonly posInterp: 'offset' | 'size';
}

const SIZES = {
  vits14: { hidden: 384, layers: 12, heads: 6, features: 64, neck: [48, 96, 192, 384], out: [2, 5, 8, 11] },
  vitb14: { hidden: 768, layers: 12, heads: 12, features: 128, neck: [96, 192, 384, 768], out: [2, 5, 8, 11] },
  vitl14: { hidden: 1024, layers: 24, heads: 16, features: 256, neck: [256, 512, 1024, 1024], out: [4, 11, 17, 23] },
} as const;

function sized(s: keyof typeof SIZES, extra: Partial<DepthConfig> = {}): DepthConfig {
  const z = SIZES[s];
  return Object.freeze({
    family: 'depth', keyLayout: 'original', hiddenSize: z.hidden, numLayers: z.layers, numHeads: z.heads, intermediateSize: 4 * z.hidden,
    patchSize: 14, imageSize: 518, layerNormEps: 1e-6, outIndices: z.out, neckSizes: z.neck, reassembleFactors: [4, 2, 1, 0.5],
    fusionSize: z.features, headHiddenSize: 32, depthType: 'relative', maxDepth: 1, posInterp: 'offset', ...extra,
  });
}

/**
 * Describe-only (and random-init) sizes, in the original layout: the paper's setting (fused qkv,
 * 96 encoder linears for ViT-L). `tiny-depth` is the test and demo size.
 */
export const DEPTH_PRESETS: Readonly<Record<string, DepthConfig>> = Object.freeze({
  'depth-anything-vits14': sized('vits14'),
  'depth-anything-vitb14': sized('vitb14'),
  'depth-anything-vitl14': sized('vitl14'),
  'tiny-depth': Object.freeze({
    ...sized('vits14'), hiddenSize: 32, numLayers: 4, numHeads: 2, intermediateSize: 128, imageSize: 56, outIndices: [0, 1, 2, 3],
    neckSizes: [8, 16, 32, 32], fusionSize: 16, headHiddenSize: 8, depthType: 'metric' as const, maxDepth: 20,
  }),
});

const FACTORS = [4, 2, 1, 0.5];

/** transformers' DepthAnythingConfig (config.json, `model_type: depth_anything`) with its Dinov2 backbone_config. */
export function parseDepthConfig(raw: Readonly<Record<string, unknown>>, source: string, keyLayout: DepthKeyLayout): DepthConfig {
  const r = new HfConfigReader(raw, source);
  r.refuse('model_type', (v) => v === 'depth_anything', 'expected "depth_anything"');
  r.refuse('backbone', (v) => v === null, 'only the Dinov2 backbone_config is supported');
  r.refuse('head_in_index', (v) => v === -1, 'the head reads the last fused map');
  const bb = raw.backbone_config;
  if (!bb || typeof bb !== 'object') throw new UserError(`${source}: 'backbone_config' is missing (a Dinov2 backbone)`);
  const b = new HfConfigReader(bb as Record<string, unknown>, `${source}: backbone_config`);
  b.refuse('model_type', (v) => v === 'dinov2', 'expected "dinov2"');
  b.refuse('use_swiglu_ffn', (v) => v === false, 'the SwiGLU FFN (ViT-g) is not implemented');
  b.refuse('num_register_tokens', (v) => v === 0, 'register tokens are not used by Depth Anything');
  b.refuse('hidden_act', (v) => v === 'gelu', 'DINOv2 uses exact GELU');
  b.refuse('qkv_bias', (v) => v === true, 'DINOv2 has q/k/v biases');
  b.refuse('apply_layernorm', (v) => v === true, 'the head reads normalised features');
  const layers = b.int('num_hidden_layers', 12);
  const outIndices = b.has('out_indices')
    ? (b.raw.out_indices as unknown[]).map((v) => Number(v) - 1) // transformers' stage 0 is the embeddings
    : Array.isArray(b.raw.out_features) ? (b.raw.out_features as unknown[]).map((s) => Number(String(s).replace('stage', '')) - 1) : null;
  if (!outIndices || outIndices.length !== 4 || outIndices.some((i) => !Number.isInteger(i) || i < 0 || i >= layers)) {
    throw new UserError(`${source}: backbone_config 'out_indices' must name 4 of the ${layers} layers (1-based, as transformers' stages)`);
  }
  const hidden = b.int('hidden_size', 768);
  const factors = r.numList('reassemble_factors', FACTORS, 4);
  if (factors.some((f, i) => f !== FACTORS[i])) r.refuse('reassemble_factors', () => false, 'only [4, 2, 1, 0.5]');
  const type = r.str('depth_estimation_type', 'relative');
  if (type !== 'relative' && type !== 'metric') r.refuse('depth_estimation_type', () => false, 'relative or metric');
  if (r.int('reassemble_hidden_size', hidden) !== hidden) r.refuse('reassemble_hidden_size', () => false, 'must equal the backbone hidden_size');
  return Object.freeze({
    family: 'depth' as const,
    keyLayout,
    hiddenSize: hidden,
    numLayers: layers,
    numHeads: b.int('num_attention_heads', 12),
    intermediateSize: Math.floor(hidden * b.num('mlp_ratio', 4)),
    patchSize: b.int('patch_size', r.int('patch_size', 14)),
    imageSize: b.int('image_size', 518),
    layerNormEps: b.num('layer_norm_eps', 1e-6),
    outIndices,
    neckSizes: r.numList('neck_hidden_sizes', [96, 192, 384, 768], 4),
    reassembleFactors: factors,
    fusionSize: r.int('fusion_hidden_size', 64),
    headHiddenSize: r.int('head_hidden_size', 32),
    depthType: type as 'relative' | 'metric',
    maxDepth: type === 'metric' ? r.num('max_depth', 1) : 1,
    posInterp: keyLayout === 'hf' ? 'size' : 'offset',
  });
}

/** The config.json transformers reads for these sizes (written by `merge` and the demo script). */
export function depthConfigToHf(c: DepthConfig, base: Readonly<Record<string, unknown>> = {}): Record<string, unknown> {
  return {
    ...base,
    architectures: ['DepthAnythingForDepthEstimation'],
    model_type: 'depth_anything',
    backbone: null,
    backbone_config: {
      model_type: 'dinov2', architectures: ['Dinov2Model'], hidden_size: c.hiddenSize, num_hidden_layers: c.numLayers, num_attention_heads: c.numHeads,
      mlp_ratio: c.intermediateSize / c.hiddenSize, patch_size: c.patchSize, image_size: c.imageSize, layer_norm_eps: c.layerNormEps, layerscale_value: 1.0,
      out_indices: c.outIndices.map((i) => i + 1), reshape_hidden_states: false, apply_layernorm: true,
    },
    patch_size: c.patchSize,
    reassemble_hidden_size: c.hiddenSize,
    reassemble_factors: [...c.reassembleFactors],
    neck_hidden_sizes: [...c.neckSizes],
    fusion_hidden_size: c.fusionSize,
    head_in_index: -1,
    head_hidden_size: c.headHiddenSize,
    depth_estimation_type: c.depthType,
    max_depth: c.depthType === 'metric' ? c.maxDepth : null,
  };
}

/** One block's module names in a key layout. */
export interface DepthBlockNames {
  readonly norm1: string;
  /** Fused [3D, D] (original) or null (hf: q, k, v below). */
  readonly qkv: string | null;
  readonly q: string;
  readonly k: string;
  readonly v: string;
  readonly proj: string;
  readonly ls1: string;
  readonly norm2: string;
  readonly fc1: string;
  readonly fc2: string;
  readonly ls2: string;
}

/** Tensor and module names of both layouts, so the model code is written once. */
export interface DepthNames {
  readonly cls: string;
  readonly mask: string;
  readonly pos: string;
  readonly patch: string;
  readonly finalNorm: string;
  block(i: number): DepthBlockNames;
  /** 1×1 projection of reassemble stage i, its resize (null for factor 1), and the 3×3 neck conv. */
  project(i: number): string;
  resize(i: number): string;
  neck(i: number): string;
  /** Fusion block j in processing order (0 = the deepest map; original refinenet4). */
  fusion(j: number): { res1: [string, string]; res2: [string, string]; out: string };
  readonly head: readonly [string, string, string];
}

export function depthNames(layout: DepthKeyLayout): DepthNames {
  if (layout === 'original') {
    const s = 'depth_head.scratch';
    return {
      cls: 'pretrained.cls_token', mask: 'pretrained.mask_token', pos: 'pretrained.pos_embed', patch: 'pretrained.patch_embed.proj', finalNorm: 'pretrained.norm',
      block: (i) => {
        const p = `pretrained.blocks.${i}`;
        return { norm1: `${p}.norm1`, qkv: `${p}.attn.qkv`, q: '', k: '', v: '', proj: `${p}.attn.proj`, ls1: `${p}.ls1.gamma`, norm2: `${p}.norm2`, fc1: `${p}.mlp.fc1`, fc2: `${p}.mlp.fc2`, ls2: `${p}.ls2.gamma` };
      },
      project: (i) => `depth_head.projects.${i}`,
      resize: (i) => `depth_head.resize_layers.${i}`,
      neck: (i) => `${s}.layer${i + 1}_rn`,
      fusion: (j) => {
        const p = `${s}.refinenet${4 - j}`;
        return { res1: [`${p}.resConfUnit1.conv1`, `${p}.resConfUnit1.conv2`], res2: [`${p}.resConfUnit2.conv1`, `${p}.resConfUnit2.conv2`], out: `${p}.out_conv` };
      },
      head: [`${s}.output_conv1`, `${s}.output_conv2.0`, `${s}.output_conv2.2`],
    };
  }
  return {
    cls: 'backbone.embeddings.cls_token', mask: 'backbone.embeddings.mask_token', pos: 'backbone.embeddings.position_embeddings',
    patch: 'backbone.embeddings.patch_embeddings.projection', finalNorm: 'backbone.layernorm',
    block: (i) => {
      const p = `backbone.encoder.layer.${i}`;
      const a = `${p}.attention.attention`;
      return {
        norm1: `${p}.norm1`, qkv: null, q: `${a}.query`, k: `${a}.key`, v: `${a}.value`, proj: `${p}.attention.output.dense`, ls1: `${p}.layer_scale1.lambda1`,
        norm2: `${p}.norm2`, fc1: `${p}.mlp.fc1`, fc2: `${p}.mlp.fc2`, ls2: `${p}.layer_scale2.lambda1`,
      };
    },
    project: (i) => `neck.reassemble_stage.layers.${i}.projection`,
    resize: (i) => `neck.reassemble_stage.layers.${i}.resize`,
    neck: (i) => `neck.convs.${i}`,
    fusion: (j) => {
      const p = `neck.fusion_stage.layers.${j}`;
      return { res1: [`${p}.residual_layer1.convolution1`, `${p}.residual_layer1.convolution2`], res2: [`${p}.residual_layer2.convolution1`, `${p}.residual_layer2.convolution2`], out: `${p}.projection` };
    },
    head: ['head.conv1', 'head.conv2', 'head.conv3'],
  };
}

function conv(extras: ParamSpec[], name: string, out: number, inC: number, k: number, bias = true): void {
  extras.push({ name: `${name}.weight`, shape: [out, inC, k, k], kind: 'plain', init: 'normal' });
  if (bias) extras.push({ name: `${name}.bias`, shape: [out], kind: 'plain', init: 'zeros' });
}

/** Every tensor of the model; the head (convolutions only: no linear, no norm) is in `extras`. */
export function depthLayout(c: DepthConfig): ModelLayout {
  const n = depthNames(c.keyLayout);
  const d = c.hiddenSize;
  const g = Math.floor(c.imageSize / c.patchSize);
  const extras: ParamSpec[] = [
    { name: n.cls, shape: [1, 1, d], kind: 'plain', init: 'normal' },
    { name: n.mask, shape: [1, d], kind: 'plain', init: 'zeros' },
    { name: n.pos, shape: [1, g * g + 1, d], kind: 'plain', init: 'normal' },
  ];
  conv(extras, n.patch, d, 3, c.patchSize);
  const linears: LinearSpec[] = [];
  const norms: NormSpec[] = [];
  for (let i = 0; i < c.numLayers; i++) {
    const b = n.block(i);
    norms.push({ path: b.norm1, features: d, hasBias: true });
    if (b.qkv) linears.push(linearSpec(b.qkv, d, 3 * d, true, 'qkv'));
    else linears.push(linearSpec(b.q, d, d, true, 'q'), linearSpec(b.k, d, d, true, 'k'), linearSpec(b.v, d, d, true, 'v'));
    linears.push(linearSpec(b.proj, d, d, true, 'attn_out'));
    norms.push({ path: b.norm2, features: d, hasBias: true });
    linears.push(linearSpec(b.fc1, d, c.intermediateSize, true, 'mlp_in'), linearSpec(b.fc2, c.intermediateSize, d, true, 'mlp_out'));
    extras.push({ name: b.ls1, shape: [d], kind: 'plain', init: 'ones' }, { name: b.ls2, shape: [d], kind: 'plain', init: 'ones' });
  }
  norms.push({ path: n.finalNorm, features: d, hasBias: true });
  const f = c.fusionSize;
  c.neckSizes.forEach((ch, i) => {
    conv(extras, n.project(i), ch, d, 1);
    const factor = c.reassembleFactors[i]!;
    // ConvTranspose2d weights are [in, out, k, k]; the downsampling conv is 3×3, stride 1/factor.
    if (factor > 1) conv(extras, n.resize(i), ch, ch, factor);
    else if (factor < 1) conv(extras, n.resize(i), ch, ch, 3);
    conv(extras, n.neck(i), f, ch, 3, false);
  });
  for (let j = 0; j < 4; j++) {
    const u = n.fusion(j);
    for (const name of [...u.res1, ...u.res2]) conv(extras, name, f, f, 3);
    conv(extras, u.out, f, f, 1);
  }
  conv(extras, n.head[0], f / 2, f, 3);
  conv(extras, n.head[1], c.headHiddenSize, f / 2, 3);
  conv(extras, n.head[2], 1, c.headHiddenSize, 1);
  return { linears, norms, extras, headPaths: [] };
}

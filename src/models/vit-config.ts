// ViT configuration: Hugging Face's ViTConfig (config.json) plus the image preprocessing of
// preprocessor_config.json, typed and frozen, its inverse for export, and the parameter layout.
// DINOv2-style options (layer scale, register tokens) are fields of the same config.
import { UserError } from '../errors.js';
import { HfConfigReader, linearSpec, type ModelLayout, type ParamSpec } from './layout.js';
import type { LinearSpec, NormSpec } from '../nn/modules.js';

export interface VitPreprocess {
  readonly height: number;
  readonly width: number;
  readonly doResize: boolean;
  readonly doRescale: boolean;
  readonly rescaleFactor: number;
  readonly doNormalize: boolean;
  readonly mean: readonly [number, number, number];
  readonly std: readonly [number, number, number];
}

export interface VitConfig {
  readonly family: 'vit';
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly intermediateSize: number;
  /** The size the position table was trained for; other sizes interpolate it. */
  readonly imageSize: number;
  readonly patchSize: number;
  readonly numChannels: number;
  readonly layerNormEps: number;
  readonly qkvBias: boolean;
  readonly hiddenAct: 'gelu' | 'gelu_new';
  /** 0: no classifier (a backbone). */
  readonly numLabels: number;
  readonly labels: readonly string[];
  /** DINOv2: per-channel residual scales `layer_scale{1,2}.lambda1`, initialised to this value; null: off. */
  readonly layerScaleInit: number | null;
  /** DINOv2 with registers (Darcet et al. 2023): learned tokens after CLS, without position embedding. */
  readonly numRegisterTokens: number;
  readonly preprocess: VitPreprocess;
}

/** ViTImageProcessor's defaults (IMAGENET_STANDARD_MEAN/STD = 0.5), used by google/vit-base-patch16-224-in21k. */
function parsePreprocess(raw: Readonly<Record<string, unknown>> | null, imageSize: number, source: string): VitPreprocess {
  const r = new HfConfigReader(raw ?? {}, source);
  let height = imageSize;
  let width = imageSize;
  const size = r.raw.size;
  if (typeof size === 'number') height = width = size;
  else if (size && typeof size === 'object') {
    const s = new HfConfigReader(size as Record<string, unknown>, `${source}: size`);
    if (s.has('shortest_edge')) height = width = s.int('shortest_edge');
    else {
      height = s.int('height');
      width = s.int('width');
    }
  }
  return Object.freeze({
    height,
    width,
    doResize: r.bool('do_resize', true),
    doRescale: r.bool('do_rescale', true),
    rescaleFactor: r.num('rescale_factor', 1 / 255),
    doNormalize: r.bool('do_normalize', true),
    mean: r.numList('image_mean', [0.5, 0.5, 0.5], 3) as [number, number, number],
    std: r.numList('image_std', [0.5, 0.5, 0.5], 3) as [number, number, number],
  });
}

function parseLabels(raw: unknown, source: string): string[] | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new UserError(`${source}: 'id2label' must be an object of index → name`);
  const entries = Object.entries(raw as Record<string, unknown>);
  const labels: string[] = new Array<string>(entries.length);
  for (const [k, v] of entries) {
    const i = Number(k);
    if (!Number.isInteger(i) || i < 0 || i >= entries.length) throw new UserError(`${source}: 'id2label' key '${k}' is not an index below ${entries.length}`);
    labels[i] = String(v);
  }
  return labels;
}

/**
 * Validates a config.json of model_type "vit". `numLabels` (the task's classes) overrides the
 * file's id2label; `preprocessor` is preprocessor_config.json when the directory has one.
 */
export function parseVitConfig(
  raw: Readonly<Record<string, unknown>>, source: string,
  opts: { numLabels?: number; labels?: readonly string[]; preprocessor?: Readonly<Record<string, unknown>> | null; preprocessorSource?: string } = {},
): VitConfig {
  const r = new HfConfigReader(raw, source);
  r.refuse('model_type', (v) => v === 'vit', 'expected "vit"');
  r.refuse('hidden_act', (v) => v === 'gelu' || v === 'gelu_new' || v === 'gelu_pytorch_tanh', 'ViT uses GELU');
  const hiddenSize = r.int('hidden_size');
  const numHeads = r.int('num_attention_heads');
  if (hiddenSize % numHeads !== 0) r.refuse('num_attention_heads', () => false, `hidden_size ${hiddenSize} must be a multiple of it`);
  const imageSize = r.int('image_size', 224);
  const patchSize = r.int('patch_size', 16);
  const fileLabels = parseLabels(raw.id2label, source);
  // transformers' PretrainedConfig default is 2 labels (LABEL_0, LABEL_1) when id2label is absent.
  // A headless checkpoint (architectures: ViTModel, like the in21k backbone) has no classifier
  // until a task asks for one.
  const headless = Array.isArray(raw.architectures) && raw.architectures.includes('ViTModel');
  const numLabels = opts.numLabels ?? fileLabels?.length ?? (headless ? 0 : r.int('num_labels', 2, 0));
  if (opts.labels && opts.labels.length !== numLabels) throw new UserError(`${source}: ${opts.labels.length} class names for a classifier of ${numLabels} classes`);
  // The task's names (dataset or adapter) win over the checkpoint's; LABEL_i as transformers names unnamed classes.
  const labels = opts.labels ? [...opts.labels] : fileLabels && fileLabels.length === numLabels ? fileLabels : Array.from({ length: numLabels }, (_, i) => `LABEL_${i}`);
  const act = r.str('hidden_act', 'gelu');
  return Object.freeze({
    family: 'vit' as const,
    hiddenSize,
    numLayers: r.int('num_hidden_layers'),
    numHeads,
    intermediateSize: r.int('intermediate_size'),
    imageSize,
    patchSize,
    numChannels: r.int('num_channels', 3),
    layerNormEps: r.num('layer_norm_eps', 1e-12),
    qkvBias: r.bool('qkv_bias', true),
    hiddenAct: act === 'gelu' ? 'gelu' : 'gelu_new',
    numLabels,
    labels: Object.freeze(labels),
    layerScaleInit: r.has('layerscale_value') ? r.num('layerscale_value') : null,
    numRegisterTokens: r.int('num_register_tokens', 0, 0),
    preprocess: parsePreprocess(opts.preprocessor ?? null, imageSize, opts.preprocessorSource ?? 'preprocessor_config.json'),
  });
}

export function vitConfigToHf(c: VitConfig, base: Readonly<Record<string, unknown>> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {
    ...base,
    architectures: [c.numLabels > 0 ? 'ViTForImageClassification' : 'ViTModel'],
    model_type: 'vit',
    hidden_size: c.hiddenSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    intermediate_size: c.intermediateSize,
    hidden_act: c.hiddenAct,
    image_size: c.imageSize,
    patch_size: c.patchSize,
    num_channels: c.numChannels,
    layer_norm_eps: c.layerNormEps,
    qkv_bias: c.qkvBias,
    id2label: Object.fromEntries(c.labels.map((l, i) => [String(i), l])),
    label2id: Object.fromEntries(c.labels.map((l, i) => [l, i])),
  };
  if (c.layerScaleInit !== null) out.layerscale_value = c.layerScaleInit;
  if (c.numRegisterTokens > 0) out.num_register_tokens = c.numRegisterTokens;
  return out;
}

export function vitPreprocessToHf(p: VitPreprocess): Record<string, unknown> {
  return {
    image_processor_type: 'ViTImageProcessor',
    do_resize: p.doResize,
    size: { height: p.height, width: p.width },
    resample: 2,
    do_rescale: p.doRescale,
    rescale_factor: p.rescaleFactor,
    do_normalize: p.doNormalize,
    image_mean: [...p.mean],
    image_std: [...p.std],
  };
}

export function vitLayout(c: VitConfig): ModelLayout {
  const d = c.hiddenSize;
  const numPatches = (c.imageSize / c.patchSize) ** 2;
  const e = 'vit.embeddings';
  const extras: ParamSpec[] = [
    { name: `${e}.cls_token`, shape: [1, 1, d], kind: 'plain', init: 'normal' },
    { name: `${e}.position_embeddings`, shape: [1, Math.floor(numPatches) + 1, d], kind: 'plain', init: 'normal' },
    { name: `${e}.patch_embeddings.projection.weight`, shape: [d, c.numChannels, c.patchSize, c.patchSize], kind: 'plain', init: 'normal' },
    { name: `${e}.patch_embeddings.projection.bias`, shape: [d], kind: 'plain', init: 'zeros' },
  ];
  if (c.numRegisterTokens > 0) extras.push({ name: `${e}.register_tokens`, shape: [1, c.numRegisterTokens, d], kind: 'plain', init: 'normal' });
  const linears: LinearSpec[] = [];
  const norms: NormSpec[] = [];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `vit.encoder.layer.${i}`;
    norms.push({ path: `${p}.layernorm_before`, features: d, hasBias: true });
    linears.push(
      linearSpec(`${p}.attention.attention.query`, d, d, c.qkvBias, 'q'),
      linearSpec(`${p}.attention.attention.key`, d, d, c.qkvBias, 'k'),
      linearSpec(`${p}.attention.attention.value`, d, d, c.qkvBias, 'v'),
      linearSpec(`${p}.attention.output.dense`, d, d, true, 'attn_out'),
    );
    norms.push({ path: `${p}.layernorm_after`, features: d, hasBias: true });
    linears.push(
      linearSpec(`${p}.intermediate.dense`, d, c.intermediateSize, true, 'mlp_in'),
      linearSpec(`${p}.output.dense`, c.intermediateSize, d, true, 'mlp_out'),
    );
    if (c.layerScaleInit !== null) {
      extras.push(
        { name: `${p}.layer_scale1.lambda1`, shape: [d], kind: 'plain', init: 'ones' },
        { name: `${p}.layer_scale2.lambda1`, shape: [d], kind: 'plain', init: 'ones' },
      );
    }
  }
  norms.push({ path: 'vit.layernorm', features: d, hasBias: true });
  if (c.numLabels > 0) linears.push(linearSpec('classifier', d, c.numLabels, true, 'head'));
  return { linears, norms, extras, headPaths: c.numLabels > 0 ? ['classifier'] : [] };
}

// Hugging Face model directories (docs/architecture.md#model-directories): config.json + model.safetensors (or shards behind
// model.safetensors.index.json). Loading is strict like transformers': the family's layout says
// which tensors must be there with which shapes; an ignore list drops what real checkpoints carry
// but the model does not use (`rotary_emb.inv_freq`, the ViT pooler); a task head missing from the
// file is created and reported; anything else missing, unexpected or mis-shaped is a UserError
// naming the tensor, raised before a single weight is read. Weights then stream one tensor at a
// time into variables (F16/BF16 widened to float32, linear weights transposed [out, in] -> [in, out]),
// so a checkpoint is never held twice.
import fs from 'node:fs';
import path from 'node:path';
import { readFloats } from '../backend/read.js';
import { checkFitsDevice } from '../backend/webgpu.js';
import { tf } from '../backend/tf.js';
import { checkTensorSet } from '../checkpoint/tensor-set.js';
import { openSafetensorsDir, writeSafetensorsShards, type SafetensorsSource, type TensorToWrite } from '../checkpoint/safetensors.js';
import { mixSeed, nameKeys } from '../nn/rng.js';
import { RunError, UserError } from '../errors.js';
import { readJsonObject } from '../json-file.js';
import { childLog } from '../log.js';
import { paramSpecs, type ModelLayout, type ParamSpec } from './layout.js';
import { llamaConfigToHf, llamaLayout } from './llama-config.js';
import type { LlamaModel } from './llama.js';
import type { VitModel } from './vit.js';
import { vitPreprocessToHf } from './vit-config.js';

const log = childLog('models');

/** How one model family meets the generic loader (the families are listed in registry.ts). */
export interface ModelFamily<C, M> {
  readonly name: 'llama' | 'vit' | 'depth';
  /** config.json `model_type` values this family reads. */
  readonly modelTypes: readonly string[];
  /** The base-model prefix (`model`, `vit`) a headless checkpoint's keys lack. */
  readonly basePrefix: string;
  parseConfig(raw: Readonly<Record<string, unknown>>, source: string, ctx: { numLabels?: number; labels?: readonly string[]; dir?: string }): C;
  layout(config: C): ModelLayout;
  /** Tensors in a file the model does not use (transformers' _keys_to_ignore_on_load_unexpected). */
  ignored(name: string, config: C): boolean;
  /** Tensors created for the task when absent (or of another size): the classification head. */
  creatable(name: string, config: C): boolean;
  build(config: C, params: ReadonlyMap<string, tf.Variable>, hfConfig: Readonly<Record<string, unknown>>): M;
}

export type HfModel = LlamaModel | VitModel;

/** Normal(0, 0.02) like transformers' initializer_range, seeded per tensor name. */
function initTensor(spec: ParamSpec, seed: number): tf.Tensor {
  const shape = spec.kind === 'linear' ? [spec.shape[1]!, spec.shape[0]!] : [...spec.shape];
  if (spec.init === 'zeros') return tf.zeros(shape);
  if (spec.init === 'ones') return tf.ones(shape);
  const h = nameKeys(spec.name).reduce((acc, c) => mixSeed(acc, c), mixSeed(seed));
  return tf.randomNormal(shape, 0, 0.02, 'float32', h);
}

function frozen(t: tf.Tensor): tf.Variable {
  // Base weights are frozen; PEFT methods that train them (norms, bitfit, all) flip `trainable`.
  return tf.variable(t, false);
}

/** Builds a family's model with seeded random weights (presets: configs only, no weights). */
export function randomModel<C, M>(family: ModelFamily<C, M>, config: C, seed: number, hfConfig: Record<string, unknown>): M {
  const params = new Map<string, tf.Variable>();
  for (const spec of paramSpecs(family.layout(config))) params.set(spec.name, tf.tidy(() => frozen(initTensor(spec, seed))));
  return family.build(config, params, hfConfig);
}

/** File key -> model key: a headless checkpoint (ViTModel, LlamaModel) lacks the base prefix. */
function keyMapper(src: SafetensorsSource, prefix: string, heads: readonly string[]): (k: string) => string {
  const names = [...src.tensors.keys()];
  const hasPrefix = names.some((n) => n.startsWith(`${prefix}.`));
  if (hasPrefix) return (k) => k;
  return (k) => (heads.some((h) => k.startsWith(`${h}.`)) ? k : `${prefix}.${k}`);
}

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16']);

/** Tensors only quantized checkpoints carry: bitsandbytes 8-bit (`SCB`, `weight_format`) and 4-bit (`absmax`, `quant_map`, `quant_state.*`), GPTQ/AWQ (`qweight`, `qzeros`, `scales`, `g_idx`). */
const QUANTIZED_KEY = /\.(SCB|weight_format|absmax|quant_map|nested_absmax|nested_quant_map|quant_state\..+|qweight|qzeros|scales|g_idx)$/;
const UNQUANTIZED = 'quantized weights are not supported: use the unquantized checkpoint (F32, F16 or BF16 safetensors, as the base model was published)';

/** One clear error for a quantized checkpoint, before the strict key check would list its extra tensors as unexpected. */
function refuseQuantized(dir: string, raw: Readonly<Record<string, unknown>>, src?: SafetensorsSource): void {
  const q = raw.quantization_config;
  if (q !== undefined && q !== null) {
    const o = typeof q === 'object' && !Array.isArray(q) ? (q as Record<string, unknown>) : {};
    const found = ['quant_method', 'bits', 'load_in_4bit', 'load_in_8bit'].filter((k) => o[k] !== undefined && o[k] !== false).map((k) => `${k} ${JSON.stringify(o[k])}`);
    throw new UserError(`${path.join(dir, 'config.json')}: 'quantization_config' is set${found.length ? ` (${found.join(', ')})` : ''}; ${UNQUANTIZED}`);
  }
  const key = src && [...src.tensors.keys()].find((k) => QUANTIZED_KEY.test(k));
  if (key) throw new UserError(`${src.file}: tensor '${key}' belongs to a quantized checkpoint (bitsandbytes, GPTQ or AWQ); ${UNQUANTIZED}`);
}

/**
 * Loads `dir` as `family`. `numLabels` sizes a classification head (created when the file has
 * none or one of another size); `seed` initialises what is created.
 */
export function loadHfDir<C, M>(
  family: ModelFamily<C, M>, dir: string, raw: Record<string, unknown>, opts: { numLabels?: number; labels?: readonly string[]; seed?: number } = {},
): { model: M; created: string[] } {
  refuseQuantized(dir, raw);
  const config = family.parseConfig(raw, path.join(dir, 'config.json'), { numLabels: opts.numLabels, labels: opts.labels, dir });
  const layout = family.layout(config);
  const specs = paramSpecs(layout);
  const src = openSafetensorsDir(dir);
  const params = new Map<string, tf.Variable>();
  try {
    refuseQuantized(dir, raw, src);
    const toModel = keyMapper(src, family.basePrefix, layout.headPaths);
    const fromFile = new Map<string, string>(); // model name -> file name
    for (const fileName of src.tensors.keys()) fromFile.set(toModel(fileName), fileName);
    // Keyed by the file's names, so errors name the tensor as the file has it.
    const modelOf = new Map(specs.map((s) => [fromFile.get(s.name) ?? s.name, s.name]));
    const { absent } = checkTensorSet({
      expected: new Map(specs.map((s) => [fromFile.get(s.name) ?? s.name, s.shape])),
      found: src.tensors,
      source: src.file,
      ignored: (fileName) => family.ignored(toModel(fileName), config),
      optional: (key) => family.creatable(modelOf.get(key)!, config),
      notes: { unexpected: `not part of this ${family.name} config`, shape: 'the config needs' },
    });
    const created = absent.map((key) => modelOf.get(key)!);
    for (const spec of specs) {
      const info = src.tensors.get(fromFile.get(spec.name) ?? spec.name);
      if (info && !created.includes(spec.name) && !FLOAT_DTYPES.has(info.dtype)) throw new UserError(`${src.file}: tensor '${fromFile.get(spec.name)}' is ${info.dtype}; model weights must be F32, F16 or BF16`);
    }

    for (const spec of specs) {
      if (created.includes(spec.name)) {
        params.set(spec.name, tf.tidy(() => frozen(initTensor(spec, opts.seed ?? 0))));
        continue;
      }
      const t = src.read(fromFile.get(spec.name)!);
      checkFitsDevice(spec.name, t.shape);
      params.set(spec.name, tf.tidy(() => {
        const x = tf.tensor(t.data as Float32Array, [...t.shape], 'float32');
        return frozen(spec.kind === 'linear' ? tf.transpose(x) : x); // [out, in] -> [in, out]
      }));
    }
    if (created.length > 0) log.info({ dir, created }, 'tensors created for the task (not in the checkpoint)');
    return { model: family.build(config, params, raw), created };
  } catch (err) {
    for (const v of params.values()) v.dispose();
    throw err;
  } finally {
    src.close();
  }
}

/** Files next to the weights that describe how to use them; merge copies them. */
export const AUX_FILES = [
  'tokenizer.json', 'tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json',
  'generation_config.json', 'preprocessor_config.json',
] as const;

export type SaveDtype = 'F32' | 'F16' | 'BF16';

export interface SaveOptions {
  readonly dtype?: SaveDtype;
  /** Bytes per shard at most (transformers' max_shard_size); default: one file. */
  readonly maxShardBytes?: number;
}

/** config.json's torch_dtype (transformers ≥ 4.56 writes `dtype`) for each dtype saved. */
const TORCH_DTYPE: Readonly<Record<SaveDtype, string>> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/**
 * The dtype a checkpoint directory was published in: config.json's `torch_dtype` (or `dtype`),
 * else the dtype most of its float tensors have (a diffusers DiT's config records none). F32 when
 * neither says (a preset, a file of another dtype).
 */
export function checkpointDtype(dir: string): SaveDtype {
  const fromTorch = (v: unknown): SaveDtype | undefined => (Object.keys(TORCH_DTYPE) as SaveDtype[]).find((d) => TORCH_DTYPE[d] === v);
  for (const cfgDir of [dir, path.join(dir, 'transformer')]) {
    const file = path.join(cfgDir, 'config.json');
    if (!fs.existsSync(file)) continue;
    const raw = readJsonObject(file);
    const d = fromTorch(raw.torch_dtype) ?? fromTorch(raw.dtype);
    if (d) return d;
  }
  const candidates: [string, string][] = [[dir, 'model.safetensors'], [path.join(dir, 'transformer'), 'diffusion_pytorch_model.safetensors'], [dir, 'diffusion_pytorch_model.safetensors']];
  for (const [d, base] of candidates) {
    if (!fs.existsSync(path.join(d, base)) && !fs.existsSync(path.join(d, `${base}.index.json`))) continue;
    const src = openSafetensorsDir(d, base);
    try {
      const counts = new Map<string, number>();
      for (const t of src.tensors.values()) if (FLOAT_DTYPES.has(t.dtype)) counts.set(t.dtype, (counts.get(t.dtype) ?? 0) + 1);
      const top = [...counts].sort((a, b) => b[1] - a[1])[0];
      return (top?.[0] as SaveDtype | undefined) ?? 'F32';
    } finally {
      src.close();
    }
  }
  return 'F32';
}

/** config.json's record of the dtype written: `torch_dtype`, and `dtype` where the base config used the newer key. */
function withDtype(config: Readonly<Record<string, unknown>>, dtype: SaveDtype): Record<string, unknown> {
  return { ...config, torch_dtype: TORCH_DTYPE[dtype], ...('dtype' in config ? { dtype: TORCH_DTYPE[dtype] } : {}) };
}

/**
 * Writes `model` as a Hugging Face directory: config.json and model.safetensors, or shards of at
 * most `maxShardBytes` with model.safetensors.index.json (linear weights transposed back to
 * [out, in]; a tied lm_head is not written, as transformers does not).
 * Linear weights and biases come from the modules, so a merged adapter is what gets saved.
 */
export async function saveHfModel(model: HfModel, dir: string, opts: SaveOptions = {}): Promise<void> {
  const dtype = opts.dtype ?? 'F32';
  const modules = new Map(model.linears().map((l) => [l.path, l]));
  let layout = model.layout;
  let hfConfig = model.toHfConfig();
  if (model.family === 'llama') {
    // A merged BitFit gives LLaMA projections biases: HF's attention_bias / mlp_bias flags hold
    // them (zeros for the projections of the group that had none).
    const anyBias = (roles: readonly string[]): boolean => model.linears().some((l) => roles.includes(l.role) && l.bias !== null);
    const cfg = { ...model.config, attentionBias: anyBias(['q', 'k', 'v', 'attn_out']), mlpBias: anyBias(['mlp_gate', 'mlp_in', 'mlp_out']) };
    layout = llamaLayout(cfg);
    hfConfig = llamaConfigToHf(cfg, model.hfConfigBase);
  }
  const specs = paramSpecs(layout);
  const specNames = new Set(specs.map((s) => s.name));
  for (const l of modules.values()) {
    if (l.bias && !specNames.has(`${l.path}.bias`)) throw new RunError(`cannot export ${l.path}: it has a bias the ${model.family} layout has no place for`);
  }
  const tensors: [string, TensorToWrite][] = [];
  for (const spec of specs) {
    const owner = modules.get(spec.name.replace(/\.(weight|bias)$/, ''));
    let data: Float32Array;
    // One tensor at a time (a 7B model is not concatenated), each read asynchronously (a GPU backend).
    if (owner && spec.name.endsWith('.weight')) data = await readFloats(tf.tidy(() => tf.transpose(owner.weight)), true); // [in, out] -> [out, in]
    else if (owner) data = owner.bias ? await readFloats(owner.bias) : new Float32Array(spec.shape[0]!);
    else {
      const v = model.parameters().get(spec.name);
      if (!v) throw new RunError(`cannot export: model has no tensor '${spec.name}'`);
      data = await readFloats(v);
    }
    tensors.push([spec.name, { dtype, shape: spec.shape, data }]);
  }
  fs.mkdirSync(dir, { recursive: true });
  const config = withDtype(hfConfig, dtype);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  if (model.family === 'vit') {
    fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify(vitPreprocessToHf(model.config.preprocess), null, 2) + '\n');
  }
  writeSafetensorsShards(dir, 'model', tensors, opts.maxShardBytes ?? Infinity, { format: 'pt' });
}

// Adapter directories (docs/architecture.md#adapter-directories): `adapter_config.json` + `adapter_model.safetensors`, keys
// `base_model.model.<module path>.<name>`. LoRA, DoRA and VeRA are written exactly as HF PEFT
// writes them (peft_type LORA / VERA, lora_A.weight [r, k], lora_B.weight [d, r],
// lora_magnitude_vector [d], vera_lambda_b/d, base_model.vera_A/B), so adapters move between
// onelora and Python PEFT; every other method is `peft_type: ONELORA` with its SPEC in `method`.
// Loading rebuilds the adapter from the config and checks the file against it: a missing key, an
// unexpected key or a shape mismatch is an error naming the key; unknown config fields are
// ignored, but those that change the maths and are not implemented are refused naming the field.
import fs from 'node:fs';
import path from 'node:path';
import { readAll } from '../backend/read.js';
import { tf } from '../backend/tf.js';
import { openSafetensorsDir, writeSafetensors, type LoadedTensor, type SafetensorsSource, type TensorToWrite } from '../checkpoint/safetensors.js';
import { checkTensorSet } from '../checkpoint/tensor-set.js';
import { UserError } from '../errors.js';
import type { AdaptableModel } from '../nn/modules.js';
import { actsOnLinears, applyMethod, type ApplyOptions, type PeftState } from './apply.js';
import { methodDef } from './registry.js';
import { DEFAULT_RANK, defaultAlpha, formatMethodSpec, parseMethodSpec, type MethodSpec } from './spec.js';
import { compileTargets, shortName, targetModuleNames } from './targets.js';
import { KEY_PREFIX } from './types.js';
import { VERA_D_INITIAL } from './vera.js';
import { readJsonObject } from '../json-file.js';

const ADAPTER_CONFIG = 'adapter_config.json';
const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

export interface SaveAdapterOptions {
  readonly baseModel?: string;
  /** onelora's task (`causal-lm`…) or a PEFT TaskType; written as PEFT's value (null where PEFT has none). */
  readonly taskType?: string | null;
  /** The task's class names (a classification dataset's `onelora.classes`): written as `id2label`/`label2id`, as in transformers' config.json. */
  readonly labels?: readonly string[];
  /** Overrides the `target_modules` written (default: the short names of the adapted modules). */
  readonly targetModules?: readonly string[] | string;
  /** The prompt template of the training data (`alpaca`), written as `onelora_prompt_template` for `generate`. */
  readonly promptTemplate?: string;
}

const TEMPLATE_FIELD = 'onelora_prompt_template';

/** The prompt template recorded in an adapter directory's config, or null (none recorded; PEFT's own adapters). */
export function adapterPromptTemplate(dir: string): string | null {
  const file = path.join(dir, ADAPTER_CONFIG);
  if (!fs.existsSync(file)) return null;
  const v = readJsonObject(file)[TEMPLATE_FIELD];
  return typeof v === 'string' ? v : null;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/**
 * PEFT's TaskType values (huggingface/peft src/peft/utils/peft_types.py); PeftConfig's
 * __post_init__ refuses any other non-null task_type. PEFT has no type for image classification or
 * diffusion: those adapters say null, as PEFT itself writes for a model without a task class.
 */
const PEFT_TASK_TYPES = ['SEQ_CLS', 'SEQ_2_SEQ_LM', 'CAUSAL_LM', 'TOKEN_CLS', 'QUESTION_ANS', 'FEATURE_EXTRACTION'] as const;
/** onelora's task names, which adapters before issue 18 wrote as task_type. */
const ONELORA_TASK_TYPES: Readonly<Record<string, (typeof PEFT_TASK_TYPES)[number] | null>> = { 'causal-lm': 'CAUSAL_LM', classification: null, diffusion: null, depth: null };

/** task_type as PEFT reads it, from either spelling; anything else is refused naming the field (PEFT refuses it too). */
function peftTaskType(v: unknown, source: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string' && (PEFT_TASK_TYPES as readonly string[]).includes(v)) return v;
  if (typeof v === 'string' && v in ONELORA_TASK_TYPES) return ONELORA_TASK_TYPES[v]!;
  throw new UserError(`${source}: 'task_type' ${JSON.stringify(v)} is not a PEFT TaskType (${PEFT_TASK_TYPES.join(', ')}) nor a onelora task (${Object.keys(ONELORA_TASK_TYPES).join(', ')}); null means none`);
}

/**
 * base_model_name_or_path as a user passes it to from_pretrained: a hub id or preset as is, a
 * directory relative to the working directory. Configs resolve paths to absolute ones, and an
 * absolute path of this machine means nothing on the next (and PEFT reloads the base from it).
 */
function asGiven(ref: string): string {
  return path.isAbsolute(ref) ? path.relative(process.cwd(), ref) || '.' : ref;
}

/**
 * id2label / label2id in transformers' form (string indices), so the class names travel with the
 * adapter into predict and merge; PEFT (≥ 0.13) drops config keys it does not know.
 */
function labelMaps(labels: readonly string[] | undefined): Record<string, Json> {
  if (!labels || labels.length === 0) return {};
  return { id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])), label2id: Object.fromEntries(labels.map((l, i) => [l, i])) };
}

/** The class names an adapter carries (its `id2label`), in index order; undefined when it has none. */
export function adapterLabels(dir: string): string[] | undefined {
  const file = path.join(dir, ADAPTER_CONFIG);
  if (!fs.existsSync(file)) return undefined;
  const v = readJsonObject(file).id2label;
  if (v === undefined || v === null) return undefined;
  const entries = typeof v === 'object' && !Array.isArray(v) ? Object.entries(v as Record<string, unknown>) : [];
  const labels = new Array<string>(entries.length);
  const ok = entries.length > 0 && entries.every(([k, name]) => {
    const i = Number(k);
    if (!Number.isInteger(i) || i < 0 || i >= entries.length || typeof name !== 'string' || labels[i] !== undefined) return false;
    labels[i] = name;
    return true;
  });
  if (!ok) {
    throw new UserError(`${file}: 'id2label' must map every index 0…n-1 to a class name, got ${JSON.stringify(v)}`);
  }
  return labels;
}

/** PEFT's `target_modules`: a list of short names, or the regex itself when one was used. */
function targetModulesOf(state: PeftState, override?: readonly string[] | string): Json {
  if (override !== undefined) return typeof override === 'string' ? override : [...override];
  const exprs = state.spec.terms.filter((t) => actsOnLinears(methodDef(t.name))).map((t) => t.targets ?? state.options.targets ?? 'all-linear');
  const regex = exprs.find((e) => e !== 'all-linear' && e !== 'qkv' && !/^[\w.,-]+$/.test(e));
  return regex ?? targetModuleNames(state.targets);
}

/** The SPEC with the caller's `targets` written into each term that used it, so loading rebuilds the same layers. */
function effectiveSpec(state: PeftState): string {
  const t = state.options.targets;
  return formatMethodSpec(state.spec.terms.map((term) => (t !== undefined && term.targets === undefined && actsOnLinears(methodDef(term.name)) ? { ...term, targets: t } : term)));
}

function headModules(state: PeftState): Json {
  const heads = [...new Set([...state.headKeys].map((k) => shortName(k.replace(/\.(weight|bias)$/, ''))))].sort();
  return heads.length ? heads : null;
}

function peftFormat(spec: MethodSpec): 'LORA' | 'VERA' | 'ONELORA' {
  if (spec.terms.length !== 1) return 'ONELORA';
  const name = spec.terms[0]!.name;
  return name === 'lora' || name === 'dora' ? 'LORA' : name === 'vera' ? 'VERA' : 'ONELORA';
}

function adapterConfig(state: PeftState, opts: SaveAdapterOptions = {}): Record<string, Json> {
  const term = state.spec.terms[0]!;
  const common: Record<string, Json> = {
    base_model_name_or_path: opts.baseModel === undefined ? null : asGiven(opts.baseModel),
    inference_mode: true,
    modules_to_save: headModules(state),
    revision: null,
    target_modules: targetModulesOf(state, opts.targetModules),
    task_type: peftTaskType(opts.taskType, 'saveAdapter'),
    ...labelMaps(opts.labels),
    // An extra field PEFT ignores on load (as it ignores any field it does not know).
    ...(opts.promptTemplate !== undefined ? { [TEMPLATE_FIELD]: opts.promptTemplate } : {}),
  };
  const exclude = state.options.exclude ?? null;
  const r = term.r ?? DEFAULT_RANK;
  switch (peftFormat(state.spec)) {
    case 'LORA':
      return {
        ...common, peft_type: 'LORA', r, lora_alpha: term.alpha ?? defaultAlpha(r), use_rslora: term.rslora ?? false,
        use_dora: term.name === 'dora', lora_dropout: term.dropout ?? 0, fan_in_fan_out: false, bias: 'none', lora_bias: false,
        init_lora_weights: true, layers_to_transform: null, layers_pattern: null, rank_pattern: {}, alpha_pattern: {},
        exclude_modules: exclude, layer_replication: null, megatron_config: null, megatron_core: 'megatron.core', loftq_config: {},
      };
    case 'VERA':
      return {
        ...common, peft_type: 'VERA', r, projection_prng_key: term.seed ?? state.seed, save_projection: true,
        vera_dropout: term.dropout ?? 0, d_initial: VERA_D_INITIAL, fan_in_fan_out: false, bias: 'none', init_weights: true,
        layers_to_transform: null, layers_pattern: null,
      };
    default:
      return { ...common, peft_type: 'ONELORA', method: effectiveSpec(state), seed: state.seed, exclude_modules: exclude };
  }
}

/** JSON with sorted keys and 2-space indent, as PEFT's save_pretrained writes it: stable bytes. */
function stableJson(v: Json, indent = ''): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  const inner = `${indent}  `;
  if (Array.isArray(v)) return v.length ? `[\n${v.map((x) => inner + stableJson(x, inner)).join(',\n')}\n${indent}]` : '[]';
  const keys = Object.keys(v).sort();
  return keys.length ? `{\n${keys.map((k) => `${inner}${JSON.stringify(k)}: ${stableJson(v[k]!, inner)}`).join(',\n')}\n${indent}}` : '{}';
}

/**
 * The adapter's tensors as they are written: unmerged (a merged state is unmerged around the read),
 * kernel-layout ones transposed to PEFT's layout, all read in one download.
 */
export async function adapterTensors(state: PeftState): Promise<Record<string, TensorToWrite>> {
  const wasMerged = state.merged;
  if (wasMerged) state.unmerge();
  try {
    const entries = [...state.trainable, ...state.buffers];
    const views = entries.map(([key, v]) => (state.kernelLayout.has(key) ? tf.transpose(v) : v));
    try {
      const data = await readAll(views);
      return Object.fromEntries(entries.map(([key], i) => [key, { dtype: 'F32' as const, shape: (views[i] as tf.Tensor).shape, data: data[i] as Float32Array }]));
    } finally {
      views.forEach((t, i) => t !== entries[i]?.[1] && t.dispose());
    }
  } finally {
    if (wasMerged) state.merge();
  }
}

/** Writes the adapter directory from tensors adapterTensors() read (synchronous: a checkpoint writes it mid-rename). */
export function writeAdapterDir(dir: string, state: PeftState, tensors: Record<string, TensorToWrite>, opts: SaveAdapterOptions = {}): void {
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, ADAPTER_WEIGHTS), tensors, { format: 'pt' });
  const cfgFile = path.join(dir, ADAPTER_CONFIG);
  fs.writeFileSync(`${cfgFile}.tmp-${process.pid}`, `${stableJson(adapterConfig(state, opts))}\n`);
  fs.renameSync(`${cfgFile}.tmp-${process.pid}`, cfgFile);
}

/** Writes the adapter directory; the tensors are saved unmerged. */
export async function saveAdapter(dir: string, state: PeftState, opts: SaveAdapterOptions = {}): Promise<void> {
  writeAdapterDir(dir, state, await adapterTensors(state), opts);
}

/** Config fields that change the maths and are not implemented: refused, naming the field. */
function refuse(file: string, cfg: Record<string, unknown>): void {
  const bad = (field: string, why: string): never => {
    throw new UserError(`${file}: '${field}' ${why} is not supported`);
  };
  if (cfg.fan_in_fan_out === true) bad('fan_in_fan_out', 'true (Conv1D-style weights)');
  for (const f of ['rank_pattern', 'alpha_pattern']) {
    const v = cfg[f];
    if (v !== undefined && v !== null && (typeof v !== 'object' || Object.keys(v).length > 0)) bad(f, `${JSON.stringify(v)} (per-module ranks)`);
  }
  const ltt = cfg.layers_to_transform;
  if (ltt !== undefined && ltt !== null && !(Array.isArray(ltt) && ltt.length === 0)) bad('layers_to_transform', `${JSON.stringify(ltt)}`);
  if (cfg.peft_type === 'VERA' && cfg.save_projection === false) bad('save_projection', 'false (the projections come from PyTorch\'s RNG and must be in the file)');
}

function targetsExpr(file: string, field: string, v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v.length > 0 ? v.join(',') : undefined;
  throw new UserError(`${file}: '${field}' must be a string or a list of module names, got ${JSON.stringify(v)}`);
}

function num(file: string, cfg: Record<string, unknown>, field: string, fallback?: number): number {
  const v = cfg[field] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new UserError(`${file}: '${field}' must be a number, got ${JSON.stringify(cfg[field])}`);
  return v;
}

/** `,dropout=p` for a PEFT dropout field above 0 (absent or 0: no dropout, nothing in the SPEC). */
function dropoutOf(file: string, cfg: Record<string, unknown>, field: string): string {
  const p = num(file, cfg, field, 0);
  if (p < 0 || p >= 1) throw new UserError(`${file}: '${field}' must be in [0, 1), got ${p}`);
  return p > 0 ? `,dropout=${p}` : '';
}

/**
 * An adapter written in another layout's module names (a DiT's in diffusers names): the model
 * family maps the file's target_modules and tensors to its own names before they are checked.
 */
export interface AdapterTranslation {
  /** Whether the file's tensor keys are in the other layout (else nothing is translated). */
  applies(keys: readonly string[]): boolean;
  targetModules(names: readonly string[]): string[];
  tensors(found: ReadonlyMap<string, { readonly dtype: 'F32'; readonly shape: readonly number[]; readonly data: Float32Array }>, source: string): Map<string, { readonly dtype: 'F32'; readonly shape: readonly number[]; readonly data: Float32Array }>;
}

/** Reads adapter_config.json into the SPEC and options that rebuild the adapter. */
function readAdapterConfig(dir: string, translate?: AdapterTranslation): { spec: MethodSpec; options: ApplyOptions; config: Record<string, unknown> } {
  const file = path.join(dir, ADAPTER_CONFIG);
  const cfg = readJsonObject(file);
  refuse(file, cfg);
  peftTaskType(cfg.task_type, file);
  const listed = cfg.target_modules;
  const targets = targetsExpr(file, 'target_modules', translate && Array.isArray(listed) ? translate.targetModules(listed as string[]) : listed);
  const exclude = targetsExpr(file, 'exclude_modules', cfg.exclude_modules);
  const mts = cfg.modules_to_save;
  const trainHead = Array.isArray(mts) && mts.length > 0;
  const t = targets ? `,targets=${targets}` : '';
  let spec: MethodSpec;
  let seed = 0;
  if (cfg.peft_type === 'LORA') {
    // PEFT's LoraConfig defaults: r 8, lora_alpha 8, lora_dropout 0.
    const r = num(file, cfg, 'r', 8);
    const d = dropoutOf(file, cfg, 'lora_dropout');
    spec = parseMethodSpec(`${cfg.use_dora === true ? 'dora' : 'lora'}:r=${r},alpha=${num(file, cfg, 'lora_alpha', 8)}${d},rslora=${cfg.use_rslora === true}${t}`);
  } else if (cfg.peft_type === 'VERA') {
    seed = num(file, cfg, 'projection_prng_key', 0);
    spec = parseMethodSpec(`vera:r=${num(file, cfg, 'r', 256)}${dropoutOf(file, cfg, 'vera_dropout')}${t}`);
  } else if (cfg.peft_type === 'ONELORA') {
    if (typeof cfg.method !== 'string') throw new UserError(`${file}: 'method' must be a SPEC string for peft_type ONELORA`);
    spec = parseMethodSpec(cfg.method);
    seed = typeof cfg.seed === 'number' ? cfg.seed : 0;
  } else {
    throw new UserError(`${file}: 'peft_type' ${JSON.stringify(cfg.peft_type)} is not supported (LORA, VERA, ONELORA)`);
  }
  if (exclude) compileTargets(exclude, `${file}: exclude_modules`);
  return { spec, options: { seed, exclude, trainHead }, config: cfg };
}

/** Whole parameters saved as modules_to_save that are not head linears (a DiT's class table). */
function taskParams(keys: readonly string[], model: AdaptableModel, modulesToSave: unknown): string[] {
  if (!Array.isArray(modulesToSave) || modulesToSave.length === 0) return [];
  const params = model.parameters();
  const linearParams = new Set(model.linears().flatMap((l) => [`${l.path}.weight`, `${l.path}.bias`]));
  return keys
    .filter((k) => k.startsWith(KEY_PREFIX))
    .map((k) => k.slice(KEY_PREFIX.length))
    .filter((n) => params.has(n) && !linearParams.has(n) && modulesToSave.includes(shortName(n.replace(/\.(weight|bias)$/, ''))));
}

/** The file's tensors, in the model's names when `translate` applies (all read: they are an adapter's, small). */
function fileTensors(src: SafetensorsSource, translate: AdapterTranslation | undefined): { shapes: ReadonlyMap<string, { readonly shape: readonly number[] }>; read: (key: string) => LoadedTensor } {
  const keys = [...src.tensors.keys()];
  if (!translate?.applies(keys)) return { shapes: src.tensors, read: (key) => src.read(key) };
  const all = new Map(keys.map((k) => {
    const t = src.read(k);
    if (!(t.data instanceof Float32Array)) throw new UserError(`${src.file}: tensor '${k}' has dtype ${t.dtype}, expected a float type`);
    return [k, { dtype: 'F32' as const, shape: t.shape, data: t.data }];
  }));
  const mapped = translate.tensors(all, src.file);
  return { shapes: mapped, read: (key) => mapped.get(key)! };
}

/**
 * Loads an adapter directory onto `model`: applies its method, then fills every tensor from the
 * file after checking names and shapes against what the method created. `translate` reads an
 * adapter written in another layout's names (a DiT adapter in diffusers names).
 */
export function loadAdapter(dir: string, model: AdaptableModel, translate?: AdapterTranslation): PeftState {
  const { spec, options, config } = readAdapterConfig(dir, translate);
  // adapter_model.safetensors, or the adapter_model.bin older PEFT wrote (docs/models.md#pytorch-bin-and-pt-files).
  const src = openSafetensorsDir(dir, ADAPTER_WEIGHTS);
  const file = src.file;
  let state: PeftState | undefined;
  try {
    const found = fileTensors(src, translate);
    const headParams = taskParams([...found.shapes.keys()], model, config.modules_to_save);
    state = applyMethod(model, spec, headParams.length ? { ...options, headParams } : options);
    const expected = new Map<string, tf.Variable>([...state.trainable, ...state.buffers]);
    // File shapes: kernel-layout tensors are stored transposed.
    const fileShape = (key: string, v: tf.Variable): readonly number[] => (state!.kernelLayout.has(key) ? [...v.shape].reverse() : v.shape);
    checkTensorSet({
      expected: new Map([...expected].map(([key, v]) => [key, fileShape(key, v)])),
      found: found.shapes,
      source: file,
      notes: { missing: `method ${spec.text}`, unexpected: `not created by method ${spec.text} on this model`, shape: 'the model needs' },
    });
    for (const [key, v] of expected) {
      const kernel = state.kernelLayout.has(key);
      const info = found.shapes.get(key)!;
      const loaded = found.read(key);
      if (!(loaded.data instanceof Float32Array)) throw new UserError(`${file}: tensor '${key}' has dtype ${loaded.dtype}, expected a float type`);
      const data = loaded.data;
      tf.tidy(() => {
        const t = tf.tensor(data, [...info.shape]);
        v.assign(kernel ? tf.transpose(t) : t);
      });
    }
  } catch (err) {
    state?.dispose();
    throw err;
  } finally {
    src.close();
  }
  return state;
}

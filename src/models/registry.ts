// The model families, in one explicit list (docs/internals.md#explicit-registries), and the two entry points the rest of
// onelora uses: `loadModel` (a checkpoint directory, or a preset with seeded random weights) and
// `describeModel` (modules, heads and parameter count from the config alone, for `onelora params`).
// Each family registers how to recognise its directories (`detect`), its presets, and how to load
// and describe them; both entry points only loop over FAMILY_LIST, so a new family is one entry.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { DIT_PRESETS, describeDit, tableRows, type DitConfig, type DitModel } from './dit.js';
import { DIT_CLASS_TABLE, loadDit, readDitConfig } from './dit-load.js';
import type { DepthAnythingModel } from './depth-anything.js';
import { DEPTH_PRESETS, depthLayout } from './depth-anything-config.js';
import { isDepthDir, loadDepth, randomDepth, readDepthConfig } from './depth-anything-load.js';
import { readJsonObject } from '../json-file.js';
import { loadHfDir, randomModel, type ModelFamily } from './hf.js';
import { HfConfigReader, countParams } from './layout.js';
import { LlamaModel } from './llama.js';
import { llamaLayout, parseLlamaConfig, type LlamaConfig } from './llama-config.js';
import type { LinearSpec, NormSpec } from '../nn/modules.js';
import { PRESETS } from './presets.js';
import { VitModel } from './vit.js';
import { parseVitConfig, vitLayout, type VitConfig } from './vit-config.js';

interface LoadedCommon {
  /** Tensor names created for the task (not in the file), e.g. `classifier.weight`. */
  readonly created: string[];
  /** The directory it was loaded from; null for a preset (random init). */
  readonly dir: string | null;
  readonly name: string;
}

export type LoadedModel =
  | (LoadedCommon & { readonly family: 'llama'; readonly model: LlamaModel })
  | (LoadedCommon & { readonly family: 'vit'; readonly model: VitModel })
  | (LoadedCommon & { readonly family: 'dit'; readonly model: DitModel })
  | (LoadedCommon & { readonly family: 'depth'; readonly model: DepthAnythingModel });

/** generation_config.json's eos_token_id (Llama 3 lists [128001, 128009] there), which generate() stops at. */
function withGenerationEos(c: LlamaConfig, dir: string | undefined): LlamaConfig {
  const file = dir ? path.join(dir, 'generation_config.json') : null;
  if (!file || !fs.existsSync(file)) return c;
  const ids = new HfConfigReader(readJsonObject(file), file).tokenIds('eos_token_id');
  return ids.length > 0 ? Object.freeze({ ...c, generationEosIds: Object.freeze(ids) }) : c;
}

export const llamaFamily: ModelFamily<LlamaConfig, LlamaModel> = {
  name: 'llama',
  modelTypes: ['llama'],
  basePrefix: 'model',
  parseConfig: (raw, source, ctx) => withGenerationEos(parseLlamaConfig(raw, source), ctx.dir),
  layout: llamaLayout,
  // inv_freq is recomputed from rope_theta; a tied head is the embedding (older exports still write it).
  ignored: (name, c) => /\.rotary_emb\.inv_freq$/.test(name) || (c.tieWordEmbeddings && name === 'lm_head.weight'),
  creatable: () => false,
  build: (c, params, hf) => new LlamaModel(c, params, hf),
};

const vitFamily: ModelFamily<VitConfig, VitModel> = {
  name: 'vit',
  modelTypes: ['vit'],
  basePrefix: 'vit',
  parseConfig: (raw, source, ctx) => {
    const pre = ctx.dir ? path.join(ctx.dir, 'preprocessor_config.json') : null;
    const preprocessor = pre && fs.existsSync(pre) ? readJsonObject(pre) : null;
    return parseVitConfig(raw, source, { numLabels: ctx.numLabels, labels: ctx.labels, preprocessor, preprocessorSource: pre ?? undefined });
  },
  layout: vitLayout,
  // The pooler (dense + tanh on CLS) is unused by ViTForImageClassification.
  ignored: (name) => name.startsWith('vit.pooler.'),
  creatable: (name) => name.startsWith('classifier.'),
  build: (c, params, hf) => new VitModel(c, params, hf),
};

export interface ModelDescription {
  readonly family: 'llama' | 'vit' | 'dit' | 'depth';
  readonly name: string;
  readonly linears: LinearSpec[];
  readonly norms: NormSpec[];
  readonly headPaths: string[];
  readonly totalParams: number;
  /** Elements of parameters made for the task that are not head linears: a DiT's new class table. */
  readonly headParams?: number;
  /** Rows of the token embedding (causal LMs): every token id of its data must be below it. */
  readonly vocabSize?: number;
}

export interface LoadOptions {
  /** Classes of the task: sizes (or creates) a ViT classifier, or a DiT's class table (+ the null class). */
  readonly numLabels?: number;
  /** The task's class names (a dataset's `onelora.classes`, an adapter's id2label): a ViT's id2label, one per class. */
  readonly labels?: readonly string[];
  /** Seeds random initialisation (presets, created heads). Default 0. */
  readonly seed?: number;
}

/** A model reference after resolution: a directory this family detected, or one of its preset names. */
type Ref = { readonly dir: string } | { readonly preset: string };

/** One model family as the registry sees it. */
interface RegisteredFamily {
  readonly name: ModelDescription['family'];
  /** config.json `model_type` values it reads (for the "not supported" message). */
  readonly modelTypes: readonly string[];
  readonly presets: readonly string[];
  /** Whether `dir` holds a checkpoint of this family. */
  detect(dir: string): boolean;
  load(ref: Ref, opts: LoadOptions): LoadedModel;
  describe(ref: Ref, opts: Pick<LoadOptions, 'numLabels'>): ModelDescription;
}

const baseName = (dir: string): string => path.basename(path.resolve(dir));

function readDirConfig(dir: string): Record<string, unknown> {
  const file = path.join(dir, 'config.json');
  if (!fs.existsSync(file)) throw new UserError(`${dir}: no config.json (not a Hugging Face model directory)`);
  return readJsonObject(file);
}

/** A Hugging Face family (hf.ts's generic loader): detected by config.json's model_type. */
function hfFamily<C, M>(family: ModelFamily<C, M>, wrap: (model: M, common: LoadedCommon) => LoadedModel): RegisteredFamily {
  const presets = Object.keys(PRESETS).filter((k) => PRESETS[k]!.family === family.name);
  const config = (ref: Ref, numLabels: number | undefined, labels?: readonly string[]): { raw: Record<string, unknown>; cfg: C } => {
    if ('dir' in ref) {
      const raw = readDirConfig(ref.dir);
      return { raw, cfg: family.parseConfig(raw, path.join(ref.dir, 'config.json'), { dir: ref.dir, numLabels, labels }) };
    }
    const raw = { ...PRESETS[ref.preset]!.hf };
    return { raw, cfg: family.parseConfig(raw, `preset ${ref.preset}`, { numLabels, labels }) };
  };
  return {
    name: family.name,
    modelTypes: family.modelTypes,
    presets,
    detect: (dir) => {
      const file = path.join(dir, 'config.json');
      return fs.existsSync(file) && family.modelTypes.includes(String(readJsonObject(file).model_type));
    },
    load: (ref, opts) => {
      if ('dir' in ref) {
        const { model, created } = loadHfDir(family, ref.dir, readDirConfig(ref.dir), opts);
        return wrap(model, { created, dir: ref.dir, name: baseName(ref.dir) });
      }
      const { raw, cfg } = config(ref, opts.numLabels, opts.labels);
      return wrap(randomModel(family, cfg, opts.seed ?? 0, raw), { created: [], dir: null, name: ref.preset });
    },
    describe: (ref, opts) => {
      const cfg = config(ref, opts.numLabels).cfg;
      const layout = family.layout(cfg);
      const vocab = (cfg as { vocabSize?: unknown }).vocabSize;
      return {
        ...(typeof vocab === 'number' ? { vocabSize: vocab } : {}),
        family: family.name,
        name: 'dir' in ref ? baseName(ref.dir) : ref.preset,
        linears: [...layout.linears],
        norms: [...layout.norms],
        headPaths: [...layout.headPaths],
        totalParams: countParams(layout),
      };
    },
  };
}

/** A DiT's modules; another class count means a new class table (numLabels + null rows), counted as `headParams`. */
function describeDitFor(config: DitConfig, numLabels: number | undefined): ModelDescription {
  const resized = numLabels !== undefined && numLabels !== config.numClasses;
  const c = resized ? { ...config, numClasses: numLabels } : config;
  const d = describeDit(c);
  const head = resized ? tableRows(c) * c.hidden : 0;
  return { family: 'dit', name: d.name, linears: d.linears, norms: d.norms, headPaths: d.headPaths, totalParams: d.totalParams, ...(head ? { headParams: head } : {}) };
}

/** DiT (dit-load.ts, two key layouts): onelora's `model_type: dit`, or a diffusers pipeline / transformer directory. */
const ditFamily: RegisteredFamily = {
  name: 'dit',
  modelTypes: ['dit'],
  presets: Object.keys(DIT_PRESETS),
  detect: (dir) => {
    if (fs.existsSync(path.join(dir, 'transformer')) || fs.existsSync(path.join(dir, 'diffusion_pytorch_model.safetensors'))) return true;
    if (fs.existsSync(path.join(dir, 'diffusion_pytorch_model.safetensors.index.json'))) return true;
    const file = path.join(dir, 'config.json');
    return fs.existsSync(file) && readJsonObject(file).model_type === 'dit';
  },
  load: (ref, opts) => {
    const model = loadDit('dir' in ref ? ref.dir : ref.preset, { seed: opts.seed ?? 0, numClasses: opts.numLabels });
    if ('dir' in ref) return { family: 'dit', model, created: [...model.created], dir: ref.dir, name: baseName(ref.dir) };
    // A preset is random anyway; a class count other than the preset's stands for the table a
    // checkpoint would get for the task (Food-101 on dit-xl-2-256), so it is reported as created.
    const resized = opts.numLabels !== undefined && opts.numLabels !== DIT_PRESETS[ref.preset]!.numClasses;
    return { family: 'dit', model, created: resized ? [DIT_CLASS_TABLE] : [], dir: null, name: ref.preset };
  },
  describe: (ref, opts) => {
    // From the config and the tensor headers: no weights, so no backend is needed (as for the HF families).
    return describeDitFor('preset' in ref ? DIT_PRESETS[ref.preset]! : readDitConfig(ref.dir), opts.numLabels);
  },
};

/** Depth Anything (depth-anything-load.ts): either key layout; the presets are the paper's sizes (describe-only at full size). */
const depthFamily: RegisteredFamily = {
  name: 'depth',
  modelTypes: ['depth_anything'],
  presets: Object.keys(DEPTH_PRESETS),
  detect: isDepthDir,
  load: (ref, opts) => {
    if ('dir' in ref) return { family: 'depth', model: loadDepth(ref.dir), created: [], dir: ref.dir, name: baseName(ref.dir) };
    return { family: 'depth', model: randomDepth(DEPTH_PRESETS[ref.preset]!, opts.seed ?? 0), created: [], dir: null, name: ref.preset };
  },
  describe: (ref) => {
    const layout = depthLayout('dir' in ref ? readDepthConfig(ref.dir) : DEPTH_PRESETS[ref.preset]!);
    const name = 'dir' in ref ? baseName(ref.dir) : ref.preset;
    return { family: 'depth', name, linears: [...layout.linears], norms: [...layout.norms], headPaths: [], totalParams: countParams(layout) };
  },
};

/**
 * Every family, in detection order: DiT first, as a diffusers directory has no model_type to go by.
 * The VAE is one more entry here.
 */
const FAMILY_LIST: readonly RegisteredFamily[] = [
  ditFamily,
  hfFamily(llamaFamily, (model, c) => ({ ...c, family: 'llama', model })),
  hfFamily(vitFamily, (model, c) => ({ ...c, family: 'vit', model })),
  depthFamily,
];

function presetNames(): string[] {
  return FAMILY_LIST.flatMap((f) => f.presets);
}

function isDir(ref: string): boolean {
  return fs.existsSync(ref) && fs.statSync(ref).isDirectory();
}

/** The family of a directory or preset name, or the UserError saying why there is none. */
function resolve(ref: string): { family: RegisteredFamily; ref: Ref } {
  if (isDir(ref)) {
    const family = FAMILY_LIST.find((f) => f.detect(ref));
    if (family) return { family, ref: { dir: ref } };
    const type = readDirConfig(ref).model_type;
    throw new UserError(`${path.join(ref, 'config.json')}: model_type ${JSON.stringify(type)} is not supported (supported: ${FAMILY_LIST.flatMap((f) => f.modelTypes).join(', ')})`);
  }
  const family = FAMILY_LIST.find((f) => f.presets.includes(ref));
  if (family) return { family, ref: { preset: ref } };
  throw new UserError(`model '${ref}': neither a directory with config.json nor a preset (presets: ${presetNames().join(', ')})`);
}

/** A directory (Hugging Face or diffusers layout) or a preset name (seeded random weights). */
export async function loadModel(ref: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const r = resolve(ref);
  return r.family.load(r.ref, opts);
}

/** Modules and counts from the config alone: no weights are allocated (7B/13B describe instantly). */
export async function describeModel(ref: string, opts: Pick<LoadOptions, 'numLabels'> = {}): Promise<ModelDescription> {
  const r = resolve(ref);
  return r.family.describe(r.ref, opts);
}

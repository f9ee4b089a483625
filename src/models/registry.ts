// The model families, in one explicit list (STYLE item 2), and the two entry points the rest of
// onelora uses: `loadModel` (a Hugging Face directory, or a preset with seeded random weights) and
// `describeModel` (modules, heads and parameter count from the config alone, for `onelora params`).
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { DIT_PRESETS, describeDit, tableRows, type DitConfig, type DitModel } from './dit.js';
import { DIT_CLASS_TABLE, loadDit } from './dit-load.js';
import { loadHfDir, randomModel, readJsonFile, type ModelFamily } from './hf.js';
import { countParams } from './layout.js';
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
  | (LoadedCommon & { readonly family: 'dit'; readonly model: DitModel });

export const llamaFamily: ModelFamily<LlamaConfig, LlamaModel> = {
  name: 'llama',
  modelTypes: ['llama'],
  basePrefix: 'model',
  parseConfig: (raw, source) => parseLlamaConfig(raw, source),
  layout: llamaLayout,
  // inv_freq is recomputed from rope_theta; a tied head is the embedding (older exports still write it).
  ignored: (name, c) => /\.rotary_emb\.inv_freq$/.test(name) || (c.tieWordEmbeddings && name === 'lm_head.weight'),
  creatable: () => false,
  build: (c, params, hf) => new LlamaModel(c, params, hf),
};

export const vitFamily: ModelFamily<VitConfig, VitModel> = {
  name: 'vit',
  modelTypes: ['vit'],
  basePrefix: 'vit',
  parseConfig: (raw, source, ctx) => {
    const pre = ctx.dir ? path.join(ctx.dir, 'preprocessor_config.json') : null;
    const preprocessor = pre && fs.existsSync(pre) ? readJsonFile(pre) : null;
    return parseVitConfig(raw, source, { numLabels: ctx.numLabels, preprocessor, preprocessorSource: pre ?? undefined });
  },
  layout: vitLayout,
  // The pooler (dense + tanh on CLS) is unused by ViTForImageClassification.
  ignored: (name) => name.startsWith('vit.pooler.'),
  creatable: (name) => name.startsWith('classifier.'),
  build: (c, params, hf) => new VitModel(c, params, hf),
};

/** Every family onelora loads from Hugging Face files. DiT has its own loader (dit-load.ts: two key layouts). */
const FAMILIES = [llamaFamily, vitFamily] as const;
type AnyFamily = (typeof FAMILIES)[number];

export interface ModelDescription {
  readonly family: 'llama' | 'vit' | 'dit';
  readonly name: string;
  readonly linears: LinearSpec[];
  readonly norms: NormSpec[];
  readonly headPaths: string[];
  readonly totalParams: number;
  /** Elements of parameters made for the task that are not head linears: a DiT's new class table. */
  readonly headParams?: number;
}

export interface LoadOptions {
  /** Classes of the task: sizes (or creates) a ViT classifier, or a DiT's class table (+ the null class). */
  readonly numLabels?: number;
  /** Seeds random initialisation (presets, created heads). Default 0. */
  readonly seed?: number;
}

export function presetNames(): string[] {
  return [...Object.keys(PRESETS), ...Object.keys(DIT_PRESETS)];
}

function familyFor(raw: Record<string, unknown>, source: string): AnyFamily {
  const type = raw.model_type;
  const family = FAMILIES.find((f) => f.modelTypes.includes(String(type)));
  if (!family) {
    throw new UserError(`${source}: model_type ${JSON.stringify(type)} is not supported (supported: ${FAMILIES.flatMap((f) => f.modelTypes).join(', ')})`);
  }
  return family;
}

function isDir(ref: string): boolean {
  return fs.existsSync(ref) && fs.statSync(ref).isDirectory();
}

function unknownRef(ref: string): UserError {
  return new UserError(`model '${ref}': neither a directory with config.json nor a preset (presets: ${presetNames().join(', ')})`);
}

/** DiT checkpoints: onelora's `model_type: dit`, or a diffusers pipeline / transformer directory. */
function isDitDir(dir: string): boolean {
  if (fs.existsSync(path.join(dir, 'transformer')) || fs.existsSync(path.join(dir, 'diffusion_pytorch_model.safetensors'))) return true;
  if (fs.existsSync(path.join(dir, 'diffusion_pytorch_model.safetensors.index.json'))) return true;
  const file = path.join(dir, 'config.json');
  return fs.existsSync(file) && readJsonFile(file).model_type === 'dit';
}

function readDirConfig(dir: string): Record<string, unknown> {
  const file = path.join(dir, 'config.json');
  if (!fs.existsSync(file)) throw new UserError(`${dir}: no config.json (not a Hugging Face model directory)`);
  return readJsonFile(file);
}

/** A directory (Hugging Face layout) or a preset name (seeded random weights). */
export async function loadModel(ref: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const seed = opts.seed ?? 0;
  if (isDir(ref) && isDitDir(ref)) {
    const model = loadDit(ref, { seed, numClasses: opts.numLabels });
    return { family: 'dit', model, created: [...model.created], dir: ref, name: path.basename(path.resolve(ref)) };
  }
  if (isDir(ref)) {
    const raw = readDirConfig(ref);
    const family = familyFor(raw, path.join(ref, 'config.json'));
    const name = path.basename(path.resolve(ref));
    // Each branch is typed by its own family, so the loader's generics line up.
    if (family.name === 'llama') {
      const { model, created } = loadHfDir(llamaFamily, ref, raw, opts);
      return { family: 'llama', model, created, dir: ref, name };
    }
    const { model, created } = loadHfDir(vitFamily, ref, raw, opts);
    return { family: 'vit', model, created, dir: ref, name };
  }
  const preset = PRESETS[ref];
  if (preset) {
    const raw = { ...preset.hf };
    if (preset.family === 'llama') {
      const model = randomModel(llamaFamily, parseLlamaConfig(raw, `preset ${ref}`), seed, raw);
      return { family: 'llama', model, created: [], dir: null, name: ref };
    }
    const cfg = parseVitConfig(raw, `preset ${ref}`, { numLabels: opts.numLabels });
    const model = randomModel(vitFamily, cfg, seed, raw);
    return { family: 'vit', model, created: [], dir: null, name: ref };
  }
  if (DIT_PRESETS[ref]) {
    // A preset is random anyway; a class count other than the preset's stands for the table a
    // checkpoint would get for the task (Food-101 on dit-xl-2-256), so it is reported as created.
    const model = loadDit(ref, { seed, numClasses: opts.numLabels });
    const resized = opts.numLabels !== undefined && opts.numLabels !== DIT_PRESETS[ref].numClasses;
    return { family: 'dit', model, created: resized ? [DIT_CLASS_TABLE] : [], dir: null, name: ref };
  }
  throw unknownRef(ref);
}

/** A DiT's modules; another class count means a new class table (numLabels + null rows), counted as `headParams`. */
function describeDitFor(config: DitConfig, numLabels: number | undefined): ModelDescription {
  const resized = numLabels !== undefined && numLabels !== config.numClasses;
  const c = resized ? { ...config, numClasses: numLabels } : config;
  const d = describeDit(c);
  const head = resized ? tableRows(c) * c.hidden : 0;
  return { family: 'dit', name: d.name, linears: d.linears, norms: d.norms, headPaths: d.headPaths, totalParams: d.totalParams, ...(head ? { headParams: head } : {}) };
}

/** Modules and counts from the config alone: no weights are allocated (7B/13B describe instantly). */
export async function describeModel(ref: string, opts: Pick<LoadOptions, 'numLabels'> = {}): Promise<ModelDescription> {
  let raw: Record<string, unknown>;
  let name: string;
  let dir: string | undefined;
  if (isDir(ref) && isDitDir(ref)) {
    const model = loadDit(ref);
    try {
      return describeDitFor(model.config, opts.numLabels);
    } finally {
      model.dispose();
    }
  } else if (isDir(ref)) {
    raw = readDirConfig(ref);
    name = path.basename(path.resolve(ref));
    dir = ref;
  } else if (PRESETS[ref]) {
    raw = { ...PRESETS[ref].hf };
    name = ref;
  } else if (DIT_PRESETS[ref]) {
    return describeDitFor(DIT_PRESETS[ref], opts.numLabels);
  } else {
    throw unknownRef(ref);
  }
  const source = dir ? path.join(dir, 'config.json') : `preset ${ref}`;
  const family = familyFor(raw, source);
  const layout =
    family.name === 'llama'
      ? llamaLayout(llamaFamily.parseConfig(raw, source, { dir }))
      : vitLayout(vitFamily.parseConfig(raw, source, { dir, numLabels: opts.numLabels }));
  return {
    family: family.name,
    name,
    linears: [...layout.linears],
    norms: [...layout.norms],
    headPaths: [...layout.headPaths],
    totalParams: countParams(layout),
  };
}

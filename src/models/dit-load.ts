// Loading and saving DiT checkpoints (docs/architecture.md#model-directories: strict, with a per-layout ignore list).
//
// Two key layouts are read, F32/F16/BF16:
//  - facebookresearch/DiT (`x_embedder.proj`, `blocks.N.attn.qkv`, `final_layer.linear`, …) from a
//    `model.safetensors` (or shards, or a .safetensors file) — the layout onelora builds and writes.
//    `pos_embed` is a fixed table: checked for shape and ignored. The original release's `.pt` (a plain
//    state dict) and train.py's checkpoints (`{model, ema, opt, args}`: `ema` is taken) are read
//    through the restricted unpickler (checkpoint/torch-file.ts), as a file or a directory's one `.pt`.
//  - diffusers DiTTransformer2DModel (`transformer/diffusion_pytorch_model.safetensors` + config.json):
//    separate `attn1.to_q/to_k/to_v` are fused into qkv (rows q, k, v), and the timestep/class
//    embedders that diffusers repeats in every block (`transformer_blocks.N.norm1.emb.*`) are
//    de-duplicated: block 0's are used and every other copy must be identical (docs/architecture.md#method-spec).
//    diffusers computes the timestep frequencies with shift 1 and the pre-MLP LayerNorm with its
//    norm_eps, so this layout loads with those (see DitConfig).
import fs from 'node:fs';
import path from 'node:path';
import { readFloats } from '../backend/read.js';
import { tf } from '../backend/tf.js';
import { checkTensorSet } from '../checkpoint/tensor-set.js';
import { openSafetensorsDir, writeSafetensorsShards, type SafetensorsSource, type TensorToWrite } from '../checkpoint/safetensors.js';
import { Rng, nameKeys } from '../nn/rng.js';
import { UserError } from '../errors.js';
import { gaussian } from './diffusion.js';
import type { SaveOptions } from './hf.js';
import {
  DIT_PRESETS, DitAttention, DitBlock, DitMlp, DitModel, ditLinearSpecs, posEmbedTable, tableRows,
  validateDitConfig, type DitConfig,
} from './dit.js';
import { LinearModule } from '../nn/modules.js';
import { readJsonObject } from '../json-file.js';

/** Shape and data of one tensor in facebookresearch semantics (linear weights [out, in]). */
type Getter = (name: string, shape: readonly number[]) => Float32Array;

export interface LoadDitOptions {
  /** Seed of a preset's random init (default 0). */
  readonly seed?: number;
  /** 'dit' (default): DiT's initialize_weights (adaLN and final layer zero); 'random': every linear xavier-initialised. */
  readonly init?: 'dit' | 'random';
  /** Overrides of the layout's choices (see DitConfig). */
  readonly timestepShift?: 0 | 1;
  readonly mlpNormEps?: number;
  /**
   * Classes of the task (Food-101: 101). When the checkpoint has another count, its class table is
   * ignored and a new one (numClasses + 1 rows with the null class, N(0, 0.02²), seeded) is created
   * and listed in `model.created` — the task head of a DiT fine-tune.
   */
  readonly numClasses?: number;
}

/** The class table: the one DiT parameter a new dataset replaces (its task head). */
export const DIT_CLASS_TABLE = 'y_embedder.embedding_table.weight';
const TABLE = DIT_CLASS_TABLE;

/**
 * The class count an adapter's own class table fixes (an adapter trained on another dataset saves
 * the table as modules_to_save): its rows less the classifier-free-guidance null row; undefined
 * when the adapter carries none.
 */
export function adapterDitClasses(adapterDir: string): number | undefined {
  const file = path.join(adapterDir, 'adapter_model.safetensors');
  if (!fs.existsSync(file)) return undefined;
  const src = openSafetensorsDir(file);
  try {
    // The table in facebookresearch's name, or block 0's copy in diffusers' (an adapter exported with diffusers names).
    const rows = (src.tensors.get(`base_model.model.${TABLE}`) ?? src.tensors.get(`base_model.model.transformer_blocks.0.norm1.emb.class_embedder.${TABLE.slice('y_embedder.'.length)}`))?.shape[0];
    return rows === undefined ? undefined : rows - 1;
  } finally {
    src.close();
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function variable2d(data: Float32Array, outF: number, inF: number): tf.Variable<tf.Rank.R2> {
  // [out, in] -> kernel layout [in, out]
  return tf.variable(tf.tidy(() => tf.tensor2d(data, [outF, inF]).transpose()), false) as tf.Variable<tf.Rank.R2>;
}

function linearFrom(get: Getter, pathName: string, inF: number, outF: number, role: LinearModule['role']): LinearModule {
  const w = variable2d(get(`${pathName}.weight`, [outF, inF]), outF, inF);
  const b = tf.variable(tf.tensor1d(get(`${pathName}.bias`, [outF])), false) as tf.Variable<tf.Rank.R1>;
  return new LinearModule(pathName, role, w, b);
}

/** Builds the model from tensors named and shaped as in facebookresearch/DiT. */
function assembleDit(config: DitConfig, get: Getter, created: readonly string[] = []): DitModel {
  const c = validateDitConfig(config, config.name);
  const specs = new Map(ditLinearSpecs(c).map((s) => [s.path, s]));
  const lin = (p: string): LinearModule => {
    const s = specs.get(p)!;
    return linearFrom(get, p, s.inFeatures, s.outFeatures, s.role);
  };
  const D = c.hidden;
  const k = c.inChannels * c.patchSize ** 2;
  const conv = get('x_embedder.proj.weight', [D, c.inChannels, c.patchSize, c.patchSize]); // [D, C, p, p] = [D, C·p·p] row-major
  const xEmbedder = new LinearModule('x_embedder.proj', 'other', variable2d(conv, D, k), tf.variable(tf.tensor1d(get('x_embedder.proj.bias', [D])), false) as tf.Variable<tf.Rank.R1>);
  const yTable = tf.variable(tf.tensor2d(get('y_embedder.embedding_table.weight', [tableRows(c), D]), [tableRows(c), D]), false) as tf.Variable<tf.Rank.R2>;
  const blocks: DitBlock[] = [];
  for (let i = 0; i < c.depth; i++) {
    const b = `blocks.${i}`;
    const adaLN = lin(`${b}.adaLN_modulation.1`);
    const attn = new DitAttention(lin(`${b}.attn.qkv`), lin(`${b}.attn.proj`), c.heads);
    blocks.push(new DitBlock(adaLN, attn, new DitMlp(lin(`${b}.mlp.fc1`), lin(`${b}.mlp.fc2`)), c.mlpNormEps));
  }
  return new DitModel(c, {
    xEmbedder, yTable, blocks,
    tMlp: [lin('t_embedder.mlp.0'), lin('t_embedder.mlp.2')],
    finalAdaLN: lin('final_layer.adaLN_modulation.1'),
    finalLinear: lin('final_layer.linear'),
  }, created);
}

/** Resizes the class table to `opts.numClasses` when it differs: the file's table(s) are then ignored. */
function classTable(config: DitConfig, opts: LoadDitOptions, fileTables: readonly string[], src: SafetensorsSource, get: Getter): { config: DitConfig; get: Getter; ignored: [string, readonly number[]][]; created: string[] } {
  if (opts.numClasses === undefined || opts.numClasses === config.numClasses) return { config, get, ignored: [], created: [] };
  const c = validateDitConfig({ ...config, numClasses: opts.numClasses }, `numClasses ${opts.numClasses}`);
  const fresh: Getter = (name, shape) => (name === TABLE ? gaussian(Rng.from(opts.seed ?? 0, 0x7ab1e), shape[0]! * shape[1]!, 0.02) : get(name, shape));
  return { config: c, get: fresh, ignored: fileTables.map((n) => [n, src.tensors.get(n)?.shape ?? []]), created: [TABLE] };
}

/** DiT's initialize_weights (or xavier everywhere with init 'random'), seeded. */
function initDit(config: DitConfig, seed = 0, init: 'dit' | 'random' = 'dit'): DitModel {
  const zero = (name: string): boolean =>
    init === 'dit' && (name.includes('adaLN_modulation') || name.startsWith('final_layer.'));
  return assembleDit(config, (name, shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const rng = Rng.from(seed, 0xd17, ...nameKeys(name));
    if (name.endsWith('.bias') || zero(name)) return new Float32Array(n);
    if (name.startsWith('y_embedder') || (name.startsWith('t_embedder') && init === 'dit')) return gaussian(rng, n, 0.02);
    const fanOut = shape[0]!;
    const fanIn = n / fanOut;
    const bound = Math.sqrt(6 / (fanIn + fanOut));
    return Float32Array.from({ length: n }, () => rng.uniform(-bound, bound));
  });
}

/** Strict reading: every tensor the model needs must be there with its shape; leftovers are errors. */
class StrictReader {
  readonly used = new Set<string>();
  constructor(readonly src: SafetensorsSource, readonly ignored: Map<string, readonly number[]>) {}

  ignore(entries: readonly [string, readonly number[]][]): void {
    for (const [n, shape] of entries) this.ignored.set(n, shape);
  }

  read(name: string, shape: readonly number[]): Float32Array {
    const info = this.src.tensors.get(name);
    if (!info) throw new UserError(`${this.src.file}: tensor '${name}' is missing`);
    if (!sameShape(info.shape, shape)) throw new UserError(`${this.src.file}: tensor '${name}' has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}]`);
    const t = this.src.read(name);
    if (!(t.data instanceof Float32Array)) throw new UserError(`${this.src.file}: tensor '${name}' is ${t.dtype}, expected a float dtype`);
    this.used.add(name);
    return t.data;
  }

  /** After assembly: every tensor read was expected; anything else in the file must be ignored (and shaped as said). */
  finish(): void {
    const expected = new Map([...this.used].map((n) => [n, this.src.tensors.get(n)!.shape]));
    checkTensorSet({ expected, found: this.src.tensors, source: this.src.file, ignored: (n) => this.ignored.get(n) ?? false, notes: { unexpected: 'not part of this DiT' } });
  }
}

/** DiT's model sizes (S, B, L, XL): the head count is not recoverable from tensor shapes. */
const HEADS_BY_HIDDEN: Readonly<Record<number, number>> = { 384: 6, 768: 12, 1024: 16, 1152: 16 };

const ONELORA_KEYS: Record<string, keyof DitConfig> = {
  input_size: 'inputSize', patch_size: 'patchSize', in_channels: 'inChannels', hidden_size: 'hidden', depth: 'depth',
  num_heads: 'heads', mlp_ratio: 'mlpRatio', num_classes: 'numClasses', class_dropout_prob: 'classDropout',
  learn_sigma: 'learnSigma', timestep_shift: 'timestepShift', mlp_norm_eps: 'mlpNormEps',
};

/** facebookresearch layout: sizes from the tensors, the rest from onelora's config.json when present. */
function origConfig(src: SafetensorsSource, configFile: string | null, name: string): DitConfig {
  const shape = (n: string): readonly number[] => {
    const info = src.tensors.get(n);
    if (!info) throw new UserError(`${src.file}: tensor '${n}' is missing (not a DiT checkpoint in the facebookresearch layout?)`);
    return info.shape;
  };
  const [D, C, p] = shape('x_embedder.proj.weight') as [number, number, number];
  let depth = 0;
  while (src.tensors.has(`blocks.${depth}.attn.qkv.weight`)) depth++;
  const rows = shape('y_embedder.embedding_table.weight')[0]!;
  const pos = src.tensors.get('pos_embed')?.shape;
  const fromFile: Record<string, unknown> = {};
  if (configFile) {
    for (const [k, v] of Object.entries(readJsonObject(configFile))) {
      if (k === 'model_type') {
        if (v !== 'dit') throw new UserError(`${configFile}: model_type is ${JSON.stringify(v)}, expected "dit"`);
      } else if (k in ONELORA_KEYS) fromFile[ONELORA_KEYS[k]!] = v;
      else throw new UserError(`${configFile}: unknown key '${k}' (known: model_type, ${Object.keys(ONELORA_KEYS).join(', ')})`);
    }
  }
  const heads = (fromFile.heads as number | undefined) ?? HEADS_BY_HIDDEN[D];
  if (heads === undefined) throw new UserError(`${configFile ?? src.file}: num_heads is needed for hidden size ${D} (put it in config.json)`);
  const inputSize = (fromFile.inputSize as number | undefined) ?? (pos ? Math.round(Math.sqrt(pos[1]!)) * p : undefined);
  if (inputSize === undefined) throw new UserError(`${configFile ?? src.file}: input_size is needed (no pos_embed tensor to infer it from)`);
  const dropout = (fromFile.classDropout as number | undefined) ?? 0.1;
  const config: DitConfig = {
    name, inputSize, patchSize: p, inChannels: C, hidden: D, depth, heads,
    mlpRatio: shape('blocks.0.mlp.fc1.weight')[0]! / D,
    numClasses: rows - (dropout > 0 ? 1 : 0), classDropout: dropout,
    learnSigma: shape('final_layer.linear.weight')[0]! / (p * p) === 2 * C,
    timestepShift: 0, mlpNormEps: 1e-6, ...fromFile,
  };
  return validateDitConfig(config, configFile ?? src.file);
}

function diffusersConfig(file: string, name: string): DitConfig {
  const j = readJsonObject(file);
  const num = (k: string, dflt?: number): number => {
    const v = j[k] ?? dflt;
    if (typeof v !== 'number') throw new UserError(`${file}: '${k}' is missing or not a number`);
    return v;
  };
  if (j.norm_type !== undefined && j.norm_type !== 'ada_norm_zero') throw new UserError(`${file}: norm_type ${JSON.stringify(j.norm_type)} is not DiT's ada_norm_zero`);
  const heads = num('num_attention_heads');
  const inC = num('in_channels');
  const outC = num('out_channels', inC);
  return validateDitConfig({
    name, inputSize: num('sample_size'), patchSize: num('patch_size'), inChannels: inC, hidden: heads * num('attention_head_dim'),
    depth: num('num_layers'), heads, mlpRatio: 4, numClasses: num('num_embeds_ada_norm'), classDropout: 0.1,
    learnSigma: outC === 2 * inC, timestepShift: 1, mlpNormEps: num('norm_eps', 1e-5),
  }, file);
}

/** facebookresearch name -> diffusers names (several are concatenated along the output rows). */
export function diffusersNames(name: string, depth: number): string[] {
  const fixed: Record<string, string> = {
    'x_embedder.proj': 'pos_embed.proj', 'final_layer.adaLN_modulation.1': 'proj_out_1', 'final_layer.linear': 'proj_out_2',
    't_embedder.mlp.0': 'norm1.emb.timestep_embedder.linear_1', 't_embedder.mlp.2': 'norm1.emb.timestep_embedder.linear_2',
    'y_embedder.embedding_table': 'norm1.emb.class_embedder.embedding_table',
  };
  const kind = name.slice(name.lastIndexOf('.') + 1);
  const mod = name.slice(0, name.lastIndexOf('.'));
  const f = fixed[mod];
  if (f) return f.startsWith('norm1.') ? Array.from({ length: depth }, (_, i) => `transformer_blocks.${i}.${f}.${kind}`) : [`${f}.${kind}`];
  const m = /^blocks\.(\d+)\.(.+)$/.exec(mod);
  if (!m) throw new Error(`no diffusers name for ${name}`);
  const b = `transformer_blocks.${m[1]}`;
  const inner: Record<string, string[]> = {
    'adaLN_modulation.1': ['norm1.linear'], 'attn.qkv': ['attn1.to_q', 'attn1.to_k', 'attn1.to_v'], 'attn.proj': ['attn1.to_out.0'],
    'mlp.fc1': ['ff.net.0.proj'], 'mlp.fc2': ['ff.net.2'],
  };
  return inner[m[2]!]!.map((n) => `${b}.${n}.${kind}`);
}

function diffusersGetter(reader: StrictReader, config: DitConfig): Getter {
  return (name, shape) => {
    const names = diffusersNames(name, config.depth);
    if (name.startsWith('t_embedder') || name.startsWith('y_embedder')) {
      const first = reader.read(names[0]!, shape);
      for (const other of names.slice(1)) {
        const copy = reader.read(other, shape);
        if (copy.some((v, i) => v !== first[i])) throw new UserError(`${reader.src.file}: '${other}' differs from '${names[0]}': per-block embedders must be identical copies to de-duplicate`);
      }
      return first;
    }
    const part = [shape[0]! / names.length, ...shape.slice(1)];
    const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
    names.forEach((n, i) => out.set(reader.read(n, part), (i * out.length) / names.length));
    return out;
  };
}

function withOverrides(c: DitConfig, o: LoadDitOptions): DitConfig {
  return { ...c, ...(o.timestepShift !== undefined ? { timestepShift: o.timestepShift } : {}), ...(o.mlpNormEps !== undefined ? { mlpNormEps: o.mlpNormEps } : {}) };
}

/** A facebookresearch directory's weights: the usual names, else its one `.pt`/`.pth` (DiT-XL-2-256x256.pt beside config.json). */
function origWeights(dir: string): string {
  const usual = ['model.safetensors', 'pytorch_model.bin'].some((n) => fs.existsSync(path.join(dir, n)) || fs.existsSync(path.join(dir, `${n}.index.json`)));
  const pts = usual ? [] : fs.readdirSync(dir).filter((n) => /\.pth?$/.test(n));
  if (pts.length > 1) throw new UserError(`${dir}: several .pt files (${pts.join(', ')}): name the one to load`);
  return pts.length === 1 ? path.join(dir, pts[0]!) : dir;
}

/** Which layout a DiT path holds: a diffusers directory (`diffDir`), else the facebookresearch one. */
function locate(dirOrPreset: string): { name: string; isFile: boolean; diffDir: string | null } {
  if (!fs.existsSync(dirOrPreset)) throw new UserError(`${dirOrPreset}: neither a DiT preset (${Object.keys(DIT_PRESETS).join(', ')}) nor an existing path`);
  const name = path.basename(path.resolve(dirOrPreset));
  const isFile = fs.statSync(dirOrPreset).isFile();
  const sub = path.join(dirOrPreset, 'transformer');
  const diffDir = isFile ? null : fs.existsSync(path.join(sub, 'config.json')) ? sub : ['diffusion_pytorch_model.safetensors', 'diffusion_pytorch_model.bin'].some((n) => fs.existsSync(path.join(dirOrPreset, n)) || fs.existsSync(path.join(dirOrPreset, `${n}.index.json`))) ? dirOrPreset : null;
  return { name, isFile, diffDir };
}

/** The key layout a DiT directory holds, so a merge can write the result in the same one. */
export function ditLayout(dir: string): 'diffusers' | 'original' {
  return locate(dir).diffDir ? 'diffusers' : 'original';
}

/** A DiT checkpoint's config from config.json and the tensor headers alone, no weight read (`onelora params`, before any backend exists). */
export function readDitConfig(dir: string): DitConfig {
  const { name, isFile, diffDir } = locate(dir);
  if (diffDir) return diffusersConfig(path.join(diffDir, 'config.json'), name);
  const src = openSafetensorsDir(isFile ? dir : origWeights(dir));
  try {
    const cfgFile = isFile ? null : path.join(dir, 'config.json');
    return origConfig(src, cfgFile && fs.existsSync(cfgFile) ? cfgFile : null, name);
  } finally {
    src.close();
  }
}

/**
 * A DiT from a preset name (random init, seeded), a diffusers directory (the pipeline's, with
 * `transformer/`, or the transformer's own), a directory with `model.safetensors` (or
 * `pytorch_model.bin`, or one `.pt`) in the facebookresearch layout (+ onelora's config.json), or a
 * single .safetensors / .pt file.
 */
export function loadDit(dirOrPreset: string, opts: LoadDitOptions = {}): DitModel {
  const preset = DIT_PRESETS[dirOrPreset];
  if (preset) return initDit(withOverrides({ ...preset, numClasses: opts.numClasses ?? preset.numClasses }, opts), opts.seed ?? 0, opts.init ?? 'dit');
  const { name, isFile, diffDir } = locate(dirOrPreset);
  if (diffDir) {
    const config = withOverrides(diffusersConfig(path.join(diffDir, 'config.json'), name), opts);
    const src = openSafetensorsDir(diffDir, 'diffusion_pytorch_model.safetensors');
    try {
      const tables = diffusersNames(`${TABLE}`, config.depth);
      const reader = new StrictReader(src, new Map());
      const t = classTable(config, opts, tables, src, diffusersGetter(reader, config));
      reader.ignore(t.ignored);
      const model = assembleDit(t.config, t.get, t.created);
      reader.finish();
      return model;
    } finally {
      src.close();
    }
  }
  const src = openSafetensorsDir(isFile ? dirOrPreset : origWeights(dirOrPreset));
  try {
    const cfgFile = isFile ? null : path.join(dirOrPreset, 'config.json');
    const config = withOverrides(origConfig(src, cfgFile && fs.existsSync(cfgFile) ? cfgFile : null, name), opts);
    const T = (config.inputSize / config.patchSize) ** 2;
    const reader = new StrictReader(src, new Map([['pos_embed', [1, T, config.hidden]]]));
    const t = classTable(config, opts, [TABLE], src, (n, shape) => reader.read(n, shape));
    reader.ignore(t.ignored);
    const model = assembleDit(t.config, t.get, t.created);
    reader.finish();
    return model;
  } finally {
    src.close();
  }
}

/**
 * Writes `DIR/model.safetensors` (facebookresearch layout, with pos_embed; F32 unless `dtype`; in
 * shards with an index above `maxShardBytes`) and `DIR/config.json`.
 */
export async function saveDit(model: DitModel, dir: string, opts: SaveOptions = {}): Promise<void> {
  const dtype = opts.dtype ?? 'F32';
  const c = model.config;
  fs.mkdirSync(dir, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, v] of model.parameters()) {
    const isLinearWeight = v.rank === 2 && name.endsWith('.weight') && !name.startsWith('y_embedder');
    const data = isLinearWeight ? await readFloats(tf.tidy(() => v.transpose()), true) : await readFloats(v); // [in, out] -> [out, in]
    const shape = name === 'x_embedder.proj.weight' ? [c.hidden, c.inChannels, c.patchSize, c.patchSize] : isLinearWeight ? [v.shape[1]!, v.shape[0]!] : v.shape;
    tensors[name] = { dtype, shape, data };
  }
  const grid = c.inputSize / c.patchSize;
  tensors.pos_embed = { dtype, shape: [1, grid * grid, c.hidden], data: posEmbedTable(c.hidden, grid) };
  writeSafetensorsShards(dir, 'model', Object.entries(tensors).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)), opts.maxShardBytes ?? Infinity, { format: 'pt' });
  const json: Record<string, unknown> = { model_type: 'dit' };
  for (const [k, field] of Object.entries(ONELORA_KEYS)) json[k] = c[field];
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(json, null, 2) + '\n');
}

/** Parameter count of a built model (the check that describeDit's count is what gets allocated). */
export function countDitParams(model: DitModel): number {
  let n = 0;
  for (const v of model.parameters().values()) n += v.size;
  return n;
}


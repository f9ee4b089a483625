// Loading diffusers AutoencoderKL directories (docs/architecture.md#model-directories, docs/dit.md#the-vae):
// `config.json` + `diffusion_pytorch_model.safetensors` (F32/F16/BF16; or the `.bin` twin), given as
// the VAE directory itself or a pipeline directory holding `vae/`. Strict as every loader here: the
// file's names and shapes are checked against what the config builds before a weight is read.
// The mid-block attention is read under the current names (`to_q/to_k/to_v/to_out.0`) or the
// legacy ones older files carry (`query/key/value/proj_attn`, possibly 1×1-conv shaped [C, C, 1, 1]).
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../backend/tf.js';
import { checkTensorSet } from '../checkpoint/tensor-set.js';
import { openSafetensorsDir, type SafetensorsSource } from '../checkpoint/safetensors.js';
import { UserError } from '../errors.js';
import { readJsonObject } from '../json-file.js';
import { convWeightFromTorch } from '../nn/conv.js';
import { Conv2dModule, GroupNormModule, LinearModule } from '../nn/modules.js';
import { Rng } from '../nn/rng.js';
import { gaussian } from './diffusion.js';
import { VaeAttention, VaeMid, VaeModel, VaeResnet, type VaeConfig, type VaeLevel } from './vae.js';

/** Tensor data in torch's layout and semantics (conv OIHW, linear [out, in]) by name and shape. */
type Getter = (name: string, shape: readonly number[]) => Float32Array;

function num(raw: Record<string, unknown>, key: string, file: string, dflt?: number): number {
  const v = raw[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new UserError(`${file}: '${key}' must be a number, got ${JSON.stringify(raw[key])}`);
  return v;
}

function bool(raw: Record<string, unknown>, key: string, file: string, dflt: boolean): boolean {
  const v = raw[key] ?? dflt;
  if (typeof v !== 'boolean') throw new UserError(`${file}: '${key}' must be true or false, got ${JSON.stringify(raw[key])}`);
  return v;
}

/** diffusers' AutoencoderKL config (its defaults where a key is absent) -> VaeConfig. */
export function parseVaeConfig(raw: Record<string, unknown>, file: string): VaeConfig {
  const cls = raw._class_name;
  if (cls !== undefined && cls !== 'AutoencoderKL') throw new UserError(`${file}: _class_name is '${String(cls)}'; only AutoencoderKL is supported`);
  const boc = raw.block_out_channels ?? [64];
  if (!Array.isArray(boc) || boc.length === 0 || !boc.every((c) => Number.isInteger(c) && c > 0)) {
    throw new UserError(`${file}: 'block_out_channels' must be a list of positive integers, got ${JSON.stringify(boc)}`);
  }
  const act = raw.act_fn ?? 'silu';
  if (act !== 'silu') throw new UserError(`${file}: act_fn '${String(act)}' is not supported (only silu, as the SD VAE)`);
  for (const [key, want] of [['down_block_types', 'DownEncoderBlock2D'], ['up_block_types', 'UpDecoderBlock2D']] as const) {
    const types = raw[key];
    if (types !== undefined && (!Array.isArray(types) || types.length !== boc.length || types.some((t) => t !== want))) {
      throw new UserError(`${file}: '${key}' must be ${boc.length} × '${want}', got ${JSON.stringify(types)}`);
    }
  }
  const shift = raw.shift_factor;
  const c: VaeConfig = {
    inChannels: num(raw, 'in_channels', file, 3), outChannels: num(raw, 'out_channels', file, 3),
    blockOutChannels: boc as number[], layersPerBlock: num(raw, 'layers_per_block', file, 1),
    latentChannels: num(raw, 'latent_channels', file, 4), normGroups: num(raw, 'norm_num_groups', file, 32),
    scalingFactor: num(raw, 'scaling_factor', file, 0.18215), shiftFactor: shift === null || shift === undefined ? 0 : num(raw, 'shift_factor', file),
    midBlockAttention: bool(raw, 'mid_block_add_attention', file, true),
    useQuantConv: bool(raw, 'use_quant_conv', file, true), usePostQuantConv: bool(raw, 'use_post_quant_conv', file, true),
    sampleSize: num(raw, 'sample_size', file, 32),
  };
  for (const ch of [...c.blockOutChannels]) {
    if (ch % c.normGroups !== 0) throw new UserError(`${file}: block_out_channels ${ch} does not split into norm_num_groups ${c.normGroups}`);
  }
  return Object.freeze(c);
}

/** The dry walk's stand-in for a module: its tensors are asked for (and recorded), nothing is built. */
function dryRun(get: Getter, tensors: readonly (readonly [string, readonly number[]])[]): never {
  for (const [name, shape] of tensors) get(name, shape);
  return undefined as never;
}

const LEGACY: Readonly<Record<string, string>> = { to_q: 'query', to_k: 'key', to_v: 'value', 'to_out.0': 'proj_attn' };

/** A frozen weight; its initial tensor is freed (tf.variable keeps the data, not that tensor). */
function frozen<R extends tf.Rank>(t: tf.Tensor<R>): tf.Variable<R> {
  const v = tf.variable(t, false);
  t.dispose();
  return v;
}

/**
 * Builds the model, taking each tensor from `get` (torch layout). With `dry`, only `get` is called
 * (to list the names and shapes) and no module is made: the result must then be dropped.
 */
function assembleVae(c: VaeConfig, get: Getter, dry = false): VaeModel {
  const cv = (name: string, cin: number, cout: number, k: number, opts: { stride?: number; padding?: number } = {}): Conv2dModule => dry ? dryRun(get, [[`${name}.weight`, [cout, cin, k, k]], [`${name}.bias`, [cout]]]) : new Conv2dModule(
    name,
    frozen(convWeightFromTorch(get(`${name}.weight`, [cout, cin, k, k]), [cout, cin, k, k])) as tf.Variable<tf.Rank.R4>,
    frozen(tf.tensor1d(get(`${name}.bias`, [cout]))) as tf.Variable<tf.Rank.R1>,
    { stride: opts.stride ?? 1, padding: opts.padding ?? Math.floor(k / 2) },
  );
  const gn = (name: string, ch: number): GroupNormModule => dry ? dryRun(get, [[`${name}.weight`, [ch]], [`${name}.bias`, [ch]]]) : new GroupNormModule(
    name, frozen(tf.tensor1d(get(`${name}.weight`, [ch]))) as tf.Variable<tf.Rank.R1>,
    frozen(tf.tensor1d(get(`${name}.bias`, [ch]))) as tf.Variable<tf.Rank.R1>, c.normGroups, 1e-6, // every GroupNorm of diffusers' AutoencoderKL uses eps 1e-6
  );
  const lin = (name: string, ch: number): LinearModule => dry ? dryRun(get, [[`${name}.weight`, [ch, ch]], [`${name}.bias`, [ch]]]) : new LinearModule(
    name, 'other',
    frozen(tf.tidy(() => tf.tensor2d(get(`${name}.weight`, [ch, ch]), [ch, ch]).transpose())) as tf.Variable<tf.Rank.R2>, // [out, in] -> [in, out]
    frozen(tf.tensor1d(get(`${name}.bias`, [ch]))) as tf.Variable<tf.Rank.R1>,
  );
  const resnet = (name: string, cin: number, cout: number): VaeResnet => new VaeResnet(
    gn(`${name}.norm1`, cin), cv(`${name}.conv1`, cin, cout, 3), gn(`${name}.norm2`, cout), cv(`${name}.conv2`, cout, cout, 3),
    cin !== cout ? cv(`${name}.conv_shortcut`, cin, cout, 1) : null,
  );
  const mid = (name: string, ch: number): VaeMid => {
    const r0 = resnet(`${name}.resnets.0`, ch, ch);
    const a = `${name}.attentions.0`;
    const attn = c.midBlockAttention
      ? new VaeAttention(gn(`${a}.group_norm`, ch), lin(`${a}.to_q`, ch), lin(`${a}.to_k`, ch), lin(`${a}.to_v`, ch), lin(`${a}.to_out.0`, ch))
      : null;
    return new VaeMid(r0, attn, resnet(`${name}.resnets.1`, ch, ch));
  };
  const boc = c.blockOutChannels;
  const lat = c.latentChannels;
  const encConvIn = cv('encoder.conv_in', c.inChannels, boc[0]!, 3);
  const down: VaeLevel[] = [];
  let prev = boc[0]!;
  boc.forEach((ch, i) => {
    const resnets = Array.from({ length: c.layersPerBlock }, (_, j) => resnet(`encoder.down_blocks.${i}.resnets.${j}`, j === 0 ? prev : ch, ch));
    prev = ch;
    down.push({ resnets, resample: i < boc.length - 1 ? cv(`encoder.down_blocks.${i}.downsamplers.0.conv`, ch, ch, 3, { stride: 2, padding: 0 }) : null });
  });
  const encMid = mid('encoder.mid_block', boc.at(-1)!);
  const encNormOut = gn('encoder.conv_norm_out', boc.at(-1)!);
  const encConvOut = cv('encoder.conv_out', boc.at(-1)!, 2 * lat, 3);
  const quantConv = c.useQuantConv ? cv('quant_conv', 2 * lat, 2 * lat, 1) : null;
  const postQuantConv = c.usePostQuantConv ? cv('post_quant_conv', lat, lat, 1) : null;
  const rev = [...boc].reverse();
  const decConvIn = cv('decoder.conv_in', lat, rev[0]!, 3);
  const decMid = mid('decoder.mid_block', rev[0]!);
  const up: VaeLevel[] = [];
  prev = rev[0]!;
  rev.forEach((ch, i) => {
    const resnets = Array.from({ length: c.layersPerBlock + 1 }, (_, j) => resnet(`decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? prev : ch, ch));
    prev = ch;
    up.push({ resnets, resample: i < rev.length - 1 ? cv(`decoder.up_blocks.${i}.upsamplers.0.conv`, ch, ch, 3) : null });
  });
  const decNormOut = gn('decoder.conv_norm_out', boc[0]!);
  const decConvOut = cv('decoder.conv_out', boc[0]!, c.outChannels, 3);
  return new VaeModel(c, { encConvIn, down, encMid, encNormOut, encConvOut, quantConv, postQuantConv, decConvIn, decMid, up, decNormOut, decConvOut });
}

/** Every tensor name (current names) and torch shape the config needs: a dry walk of assembleVae that creates nothing. */
export function vaeTensorShapes(c: VaeConfig): Map<string, readonly number[]> {
  const shapes = new Map<string, readonly number[]>();
  assembleVae(c, (name, shape) => {
    shapes.set(name, shape);
    return new Float32Array(0);
  }, true);
  return shapes;
}

/** Where the VAE files are: DIR itself, or DIR/vae (a diffusers pipeline). */
function vaeDir(dir: string): string {
  if (!fs.existsSync(dir)) throw new UserError(`--vae ${dir}: no such directory`);
  if (fs.existsSync(path.join(dir, 'config.json'))) return dir;
  if (fs.existsSync(path.join(dir, 'vae', 'config.json'))) return path.join(dir, 'vae');
  throw new UserError(`--vae ${dir}: no config.json (neither ${dir}/config.json nor ${dir}/vae/config.json): expected a diffusers AutoencoderKL directory`);
}

export function loadVae(dirArg: string): VaeModel {
  const dir = vaeDir(dirArg);
  const configFile = path.join(dir, 'config.json');
  const config = parseVaeConfig(readJsonObject(configFile, { label: `${configFile} (the VAE config)` }), configFile);
  const src: SafetensorsSource = openSafetensorsDir(dir, 'diffusion_pytorch_model.safetensors');
  try {
    // The file's name for each current name: the legacy attention names when the file uses them.
    const fileName = new Map<string, string>();
    const expected = new Map<string, readonly number[]>();
    for (const [name, shape] of vaeTensorShapes(config)) {
      const m = name.match(/^(.*\.attentions\.0\.)(to_q|to_k|to_v|to_out\.0)(\.weight|\.bias)$/);
      const legacy = m ? `${m[1]}${LEGACY[m[2]!]}${m[3]}` : undefined;
      const stored = legacy !== undefined && !src.tensors.has(name) && src.tensors.has(legacy) ? legacy : name;
      const info = src.tensors.get(stored);
      // Older files hold the attention projections as 1×1 convolutions: [C, C, 1, 1] is the same matrix.
      const want = m && m[3] === '.weight' && info?.shape.length === 4 ? [...shape, 1, 1] : shape;
      fileName.set(name, stored);
      expected.set(stored, want);
    }
    checkTensorSet({ expected, found: src.tensors, source: src.file, notes: { unexpected: 'not part of this AutoencoderKL config' } });
    return assembleVae(config, (name) => {
      const t = src.read(fileName.get(name)!);
      if (!(t.data instanceof Float32Array)) throw new UserError(`${src.file}: tensor '${fileName.get(name)}' is ${t.dtype}, expected F32/F16/BF16`);
      return t.data;
    });
  } finally {
    src.close();
  }
}

/**
 * The tensor `name` of a randomly initialised VAE, in torch layout: convs and linears
 * N(0, 1/fan_in), norm weights 1, biases and norm shifts 0; seeded per (seed, name), so a file
 * written from these (scripts/make-demo-vae.ts) equals `randomVae`.
 */
export function randomVaeTensor(name: string, shape: readonly number[], seed: number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  if (name.endsWith('.bias')) return new Float32Array(n);
  if (shape.length === 1) return new Float32Array(n).fill(1);
  return gaussian(Rng.named(seed, name), n, 1 / Math.sqrt(n / shape[0]!));
}

/** A randomly initialised VAE of `config` (benchmarks at the real size without the weights). */
export function randomVae(config: VaeConfig, seed: number): VaeModel {
  return assembleVae(config, (name, shape) => randomVaeTensor(name, shape, seed));
}

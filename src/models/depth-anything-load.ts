// Depth Anything checkpoints (docs/depth.md#checkpoints): a transformers directory (config.json with
// `model_type: depth_anything` + model.safetensors in the `backbone.`/`neck.`/`head.` layout), or
// the original release (`pretrained.`/`depth_head.` keys) as its `.pth` (read by the restricted
// unpickler, src/checkpoint/torch-file.ts) or converted to safetensors, with or without a
// config.json. The key layout is read off the tensor names; loading is strict (checkTensorSet)
// and happens before any weight is read.
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../backend/tf.js';
import { checkTensorSet } from '../checkpoint/tensor-set.js';
import { openSafetensorsDir, writeSafetensorsShards, type SafetensorsSource, type TensorToWrite } from '../checkpoint/safetensors.js';
import { UserError } from '../errors.js';
import { readJsonObject } from '../json-file.js';
import { DepthAnythingModel } from './depth-anything.js';
import { DEPTH_PRESETS, depthLayout, parseDepthConfig, type DepthConfig, type DepthKeyLayout } from './depth-anything-config.js';
import { randomModel, type ModelFamily, type SaveOptions } from './hf.js';
import { paramSpecs } from './layout.js';

const WEIGHT_FILES = ['model.safetensors', 'pytorch_model.bin'];

/** The weights of `ref`: a file as given, a directory's usual file (or shards), else its one .pth/.pt/.safetensors. */
function weightsOf(ref: string): string {
  if (fs.statSync(ref).isFile()) return ref;
  if (WEIGHT_FILES.some((n) => fs.existsSync(path.join(ref, n)) || fs.existsSync(path.join(ref, `${n}.index.json`)))) return ref;
  const files = fs.readdirSync(ref).filter((n) => /\.(pth?|safetensors)$/.test(n));
  if (files.length !== 1) throw new UserError(`${ref}: ${files.length === 0 ? 'no weights (model.safetensors, pytorch_model.bin or one .pth)' : `several weight files (${files.join(', ')}): name the one to load`}`);
  return path.join(ref, files[0]!);
}

/** Whether `dir` holds a Depth Anything checkpoint: config.json says so, or a .pth of the original release is there. */
export function isDepthDir(dir: string): boolean {
  const cfg = path.join(dir, 'config.json');
  if (fs.existsSync(cfg)) return readJsonObject(cfg).model_type === 'depth_anything';
  return fs.readdirSync(dir).some((n) => /^depth_anything.*\.pth$/.test(n));
}

function keyLayoutOf(src: SafetensorsSource): DepthKeyLayout {
  const names = [...src.tensors.keys()];
  if (names.some((n) => n.startsWith('pretrained.'))) return 'original';
  if (names.some((n) => n.startsWith('backbone.'))) return 'hf';
  throw new UserError(`${src.file}: neither the original Depth Anything layout ('pretrained.*') nor transformers' ('backbone.*')`);
}

// The original code picks these per encoder (its `intermediate_layer_idx`); the weights do not say.
const ORIGINAL_OUT: Readonly<Record<number, number[]>> = { 384: [2, 5, 8, 11], 768: [2, 5, 8, 11], 1024: [4, 11, 17, 23] };

/** An original-release file without config.json: sizes from the tensor shapes, metric or relative from the file name. */
function originalConfig(src: SafetensorsSource, name: string): DepthConfig {
  const shape = (k: string): readonly number[] => {
    const t = src.tensors.get(k);
    if (!t) throw new UserError(`${src.file}: tensor '${k}' is missing (not a Depth Anything checkpoint?)`);
    return t.shape;
  };
  const d = shape('pretrained.cls_token')[2]!;
  let layers = 0;
  while (src.tensors.has(`pretrained.blocks.${layers}.norm1.weight`)) layers++;
  const out = ORIGINAL_OUT[d];
  if (!out) throw new UserError(`${src.file}: an encoder of width ${d} is not ViT-S/B/L; give a config.json (model_type depth_anything) naming backbone_config.out_indices`);
  const p = shape('pretrained.patch_embed.proj.weight')[2]!;
  const metric = /metric/i.test(name);
  // Depth Anything V2's metric releases: Hypersim (indoor, 20 m) and Virtual KITTI (outdoor, 80 m).
  const maxDepth = /vkitti/i.test(name) ? 80 : 20;
  return Object.freeze({
    ...DEPTH_PRESETS['depth-anything-vits14']!,
    hiddenSize: d, numLayers: layers, numHeads: d / 64, intermediateSize: shape('pretrained.blocks.0.mlp.fc1.weight')[0]!, patchSize: p,
    imageSize: Math.round(Math.sqrt(shape('pretrained.pos_embed')[1]! - 1)) * p, outIndices: out,
    neckSizes: [0, 1, 2, 3].map((i) => shape(`depth_head.projects.${i}.weight`)[0]!), fusionSize: shape('depth_head.scratch.layer1_rn.weight')[0]!,
    headHiddenSize: shape('depth_head.scratch.output_conv2.0.weight')[0]!, depthType: metric ? 'metric' : 'relative', maxDepth: metric ? maxDepth : 1,
  });
}

function configOf(ref: string, src: SafetensorsSource): DepthConfig {
  const layout = keyLayoutOf(src);
  const file = fs.statSync(ref).isDirectory() ? path.join(ref, 'config.json') : null;
  if (file && fs.existsSync(file)) return parseDepthConfig(readJsonObject(file), file, layout);
  if (layout === 'hf') throw new UserError(`${ref}: a transformers-layout checkpoint needs its config.json`);
  return originalConfig(src, path.basename(src.file));
}

/** The config of a directory or weights file from config.json and the tensor headers alone (no weight read). */
export function readDepthConfig(ref: string): DepthConfig {
  const src = openSafetensorsDir(weightsOf(ref));
  try {
    return configOf(ref, src);
  } finally {
    src.close();
  }
}

const depthFamily: ModelFamily<DepthConfig, DepthAnythingModel> = {
  name: 'depth',
  modelTypes: ['depth_anything'],
  basePrefix: '',
  parseConfig: (raw, source) => parseDepthConfig(raw, source, 'hf'),
  layout: depthLayout,
  ignored: () => false,
  creatable: () => false,
  build: (c, params, hf) => new DepthAnythingModel(c, params, hf),
};

/** A preset with seeded random weights. */
export function randomDepth(config: DepthConfig, seed: number): DepthAnythingModel {
  return randomModel(depthFamily, config, seed, {});
}

/** A checkpoint directory or file in either layout. */
export function loadDepth(ref: string): DepthAnythingModel {
  const src = openSafetensorsDir(weightsOf(ref));
  const params = new Map<string, tf.Variable>();
  try {
    const config = configOf(ref, src);
    const specs = paramSpecs(depthLayout(config));
    checkTensorSet({ expected: new Map(specs.map((s) => [s.name, s.shape])), found: src.tensors, source: src.file, notes: { unexpected: `not part of this ${config.keyLayout}-layout Depth Anything config`, shape: 'the config needs' } });
    for (const spec of specs) {
      const t = src.read(spec.name);
      params.set(spec.name, tf.tidy(() => {
        const x = tf.tensor(t.data as Float32Array, [...t.shape], 'float32');
        return tf.variable(spec.kind === 'linear' ? tf.transpose(x) : x, false); // [out, in] -> [in, out]
      }));
    }
    const cfgFile = fs.statSync(ref).isDirectory() ? path.join(ref, 'config.json') : null;
    const raw = cfgFile && fs.existsSync(cfgFile) ? readJsonObject(cfgFile) : {};
    return new DepthAnythingModel(config, params, raw);
  } catch (err) {
    for (const v of params.values()) v.dispose();
    throw err;
  } finally {
    src.close();
  }
}

/**
 * Writes DIR/config.json and DIR/model.safetensors in the model's own key layout (linear weights
 * back to [out, in]; after `merge`, the merged ones), which loadDepth reads back.
 */
export async function saveDepth(model: DepthAnythingModel, dir: string, opts: SaveOptions = {}): Promise<void> {
  const dtype = opts.dtype ?? 'F32';
  const modules = new Map(model.linears().map((l) => [l.path, l]));
  const tensors: [string, TensorToWrite][] = [];
  for (const spec of paramSpecs(model.layout)) {
    const owner = modules.get(spec.name.replace(/\.(weight|bias)$/, ''));
    const v = owner ? (spec.name.endsWith('.weight') ? owner.weight : owner.bias!) : model.parameters().get(spec.name)!;
    const t = spec.kind === 'linear' ? tf.transpose(v) : v;
    const data = Float32Array.from(await t.data<'float32'>());
    if (t !== v) t.dispose();
    tensors.push([spec.name, { dtype, shape: spec.shape, data }]);
  }
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(model.toHfConfig(), null, 2) + '\n');
  writeSafetensorsShards(dir, 'model', tensors, opts.maxShardBytes ?? Infinity, { format: 'pt' });
}

// `onelora depth` and `onelora eval depth` (docs/depth.md#commands): a Depth Anything model (either
// key layout, any --adapter on top) on one image, or scored on prepared depth rows. Both preprocess
// as src/data/depth-images.ts says and resize the prediction back to the image's own size.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import sharp from 'sharp';
import { initBackend } from '../../backend/select.js';
import { Dataset, datasetSplits } from '../../data/arrow-file.js';
import type { SizeRule } from '../../data/depth-images.js';
import { evaluateDepth, predictDepth } from '../../eval/depth-run.js';
import { UserError, messageOf } from '../../errors.js';
import type { DepthAnythingModel } from '../../models/depth-anything.js';
import { backendOption, intFlag } from '../flags.js';
import { action, printResult } from '../run.js';
import { loadWithAdapter } from './model-common.js';

interface DepthFlags {
  model?: string;
  adapter?: string;
  inputSize: number;
  sizeRule?: string;
  backend?: string;
  json?: boolean;
}

function sizeRule(v: string | undefined): SizeRule | undefined {
  if (v === undefined || v === 'lower-bound' || v === 'minimal') return v;
  throw new UserError(`--size-rule: '${v}' is not lower-bound or minimal`);
}

async function withDepthModel<T>(f: DepthFlags, run: (m: DepthAnythingModel) => Promise<T>): Promise<T> {
  await initBackend(f.backend);
  const { loaded, peft } = await loadWithAdapter(f.model, f.adapter);
  try {
    if (loaded.family !== 'depth') throw new UserError(`--model ${f.model}: a ${loaded.family} model is not a depth model`);
    return await run(loaded.model);
  } finally {
    peft?.dispose();
    loaded.model.dispose();
  }
}

/** A .npy file of float32 [H, W] (little-endian, version 1.0). */
function npyBytes(data: Float32Array, h: number, w: number): Buffer {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${h}, ${w}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n'; // data starts at a multiple of 64
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

/** Turbo-like colour map of depth normalised to [0, 1] (near = warm), 8-bit RGB. */
function colourise(d: Float32Array): Uint8Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of d) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const out = new Uint8Array(d.length * 3);
  const stops = [[48, 18, 59], [40, 188, 235], [164, 252, 60], [251, 128, 34], [122, 4, 3]];
  for (let i = 0; i < d.length; i++) {
    const t = (1 - (hi > lo ? (d[i]! - lo) / (hi - lo) : 0)) * (stops.length - 1);
    const k = Math.min(Math.floor(t), stops.length - 2);
    const u = t - k;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.round(stops[k]![c]! * (1 - u) + stops[k + 1]![c]! * u);
  }
  return out;
}

export function registerDepth(program: Command): void {
  const common = (c: Command): Command => c
    .option('--model <dir>', 'Depth Anything directory (transformers or original layout) or preset')
    .option('--adapter <dir>', 'adapter directory applied on top')
    .option('--input-size <n>', 'target side of the resize to multiples of 14', intFlag(14), 518)
    .option('--size-rule <rule>', "lower-bound (the original code's) or minimal (transformers'); default: the model's layout")
    .addOption(backendOption())
    .option('--json', 'one JSON object on the last line');
  common(program.command('depth').description('depth map of one image: a colour-mapped .png or the raw float32 map as .npy, at the image size'))
    .option('--image <file>', 'image file (JPEG, PNG, WebP, …)')
    .option('--out <file>', 'depth.png (colour-mapped) or depth.npy (float32 [H, W])')
    .action(action(async (f: DepthFlags & { image?: string; out?: string }) => {
      if (!f.image) throw new UserError('--image is required');
      if (!f.out || !/\.(png|npy)$/.test(f.out)) throw new UserError('--out must name a .png or .npy file');
      if (!fs.existsSync(f.image)) throw new UserError(`--image ${f.image}: no such file`);
      const img = await sharp(f.image).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true }).catch((err: unknown) => {
        throw new UserError(`--image ${f.image}: cannot decode (${messageOf(err)})`, { cause: err });
      });
      const { width: w, height: h } = img.info;
      const r = await withDepthModel(f, async (model) => {
        const pred = predictDepth(model, new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.length), 1, h, w, { inputSize: f.inputSize, rule: sizeRule(f.sizeRule) });
        const d = Float32Array.from((await pred.data()) as Float32Array);
        pred.dispose();
        return { d, type: model.config.depthType };
      });
      fs.mkdirSync(path.dirname(path.resolve(f.out)), { recursive: true });
      if (f.out.endsWith('.npy')) fs.writeFileSync(f.out, npyBytes(r.d, h, w));
      else await sharp(Buffer.from(colourise(r.d)), { raw: { width: w, height: h, channels: 3 } }).png().toFile(f.out);
      const min = r.d.reduce((a, b) => Math.min(a, b), Infinity);
      const max = r.d.reduce((a, b) => Math.max(a, b), -Infinity);
      printResult(!!f.json, { out: f.out, height: h, width: w, depth_type: r.type, min, max }, `wrote ${f.out} (${w}×${h}, ${r.type} depth ${min.toFixed(3)}–${max.toFixed(3)})`);
    }));
}

/** `eval depth`, registered under `onelora eval` (commands/eval.ts). */
export function registerEvalDepth(ev: Command): void {
  ev.command('depth')
    .description('AbsRel, RMSE, log10, δ1–δ3 of a Depth Anything model on prepared depth rows (a .arrow file or a directory: its validation or test split)')
    .option('--model <dir>', 'Depth Anything directory (transformers or original layout) or preset')
    .option('--adapter <dir>', 'adapter directory applied on top')
    .option('--data <path>', 'a prepared depth dataset directory or .arrow file')
    .option('--input-size <n>', 'target side of the resize to multiples of 14', intFlag(14), 518)
    .option('--size-rule <rule>', "lower-bound (the original code's) or minimal (transformers'); default: the model's layout")
    .option('--variance-focus <f>', "SiLog's λ for the reported loss", Number, 0.85)
    .addOption(backendOption())
    .option('--json', 'one JSON object on the last line')
    .action(action(async (f: DepthFlags & { data?: string; varianceFocus: number }) => {
      if (!f.data || !fs.existsSync(f.data)) throw new UserError(`--data ${f.data ?? ''}: no such file or directory`);
      const file = fs.statSync(f.data).isFile() ? f.data : (datasetSplits(f.data).find((s) => s.split === 'validation' || s.split === 'test') ?? datasetSplits(f.data)[0])?.file;
      if (!file) throw new UserError(`--data ${f.data}: no .arrow split`);
      const ds = Dataset.open(file);
      try {
        if (ds.info.kind !== 'depth') throw new UserError(`--data ${file}: ${ds.info.kind} rows, not depth rows (onelora data prepare --dataset depth)`);
        const r = await withDepthModel(f, (model) => {
          const rows = function* (): Iterable<ReturnType<Dataset['rows']>> {
            for (let at = 0; at < ds.numRows; at += 8) yield ds.rows(Array.from({ length: Math.min(8, ds.numRows - at) }, (_, i) => at + i));
          };
          return evaluateDepth(model, ds.info, rows(), { inputSize: f.inputSize, rule: sizeRule(f.sizeRule), varianceFocus: f.varianceFocus });
        });
        const out = { data: file, format: ds.info.depthFormat, ...r };
        printResult(!!f.json, out, `${file} (${r.samples} images, ${ds.info.depthFormat}): AbsRel ${r.abs_rel!.toFixed(4)}  RMSE ${r.rmse!.toFixed(3)}  log10 ${r.log10!.toFixed(4)}  δ1 ${r.d1!.toFixed(3)}  δ2 ${r.d2!.toFixed(3)}  δ3 ${r.d3!.toFixed(3)}`);
      } finally {
        ds.close();
      }
    }));
}

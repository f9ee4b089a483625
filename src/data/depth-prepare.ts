// `onelora data prepare --dataset depth --format nyu|kitti|diode` (docs/depth.md#data): the layouts
// people download, into depth rows (src/data/arrow.ts: image, depth in metres, valid mask):
//   nyu:   RGB .jpg + 16-bit .png depth in millimetres (BTS/ZoeDepth's sync_depth_*.png), 480 × 640;
//          pairs from a BTS split file ("rgb depth focal" per line), else rgb_N.jpg beside sync_depth_N.png;
//   kitti: RGB .png + projected 16-bit .png depth (value / 256 metres, 0 = no measurement), from an
//          Eigen split file; frames are KB-cropped to 352 × 1216 (bottom rows, centred), as BTS does;
//   diode: X.png + X_depth.npy (metres, [H, W, 1]) + X_depth_mask.npy, 768 × 1024; pairs found by walking,
//          or from a list of the .png paths.
// With --split-file every row goes to one split (`train` when the file's name says so, else `test`);
// without, rows are split into train/validation by --val-fraction. A bad row (missing depth file,
// size mismatch, unreadable image, "None" in a split file) is a UserError naming it, or skipped and
// counted with --skip-bad.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { messageOf } from '../errors.js';
import { ArrowFileWriter } from './arrow-file.js';
import { depthBatch, depthSchema } from './arrow.js';
import { validationMask, type BadRows, type PrepareOptions } from './prepare-common.js';
import { UserError } from '../errors.js';

export const DEPTH_FORMATS = ['nyu', 'kitti', 'diode'] as const;
export type DepthFormat = (typeof DEPTH_FORMATS)[number];

const FRAME: Readonly<Record<DepthFormat, [number, number]>> = { nyu: [480, 640], kitti: [352, 1216], diode: [768, 1024] };

interface Pair {
  readonly image: string;
  readonly depth: string;
  readonly mask?: string;
  readonly where: string;
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

function pairsOf(format: DepthFormat, input: string, splitFile: string | undefined): Pair[] {
  if (splitFile) {
    if (!fs.existsSync(splitFile)) throw new UserError(`--split-file ${splitFile}: no such file`);
    return fs.readFileSync(splitFile, 'utf8').split('\n').map((l, i) => ({ l: l.trim(), i })).filter((x) => x.l).map(({ l, i }) => {
      const [img, dep] = l.split(/\s+/);
      const rel = (p: string | undefined): string => (p && p !== 'None' ? path.join(input, p.replace(/^\/+/, '')) : '');
      const where = `${splitFile}: line ${i + 1}`;
      // DIODE has no split files of its own: a list of its .png paths (`find val/outdoor -name '*.png'`).
      if (format === 'diode' && dep === undefined) return { image: rel(img), depth: rel(img).replace(/\.png$/, '_depth.npy'), mask: rel(img).replace(/\.png$/, '_depth_mask.npy'), where };
      return { image: rel(img), depth: rel(dep), where };
    });
  }
  const files = walk(input);
  if (format === 'nyu') {
    return files.filter((f) => /rgb_\d+\.jpg$/.test(f)).map((f) => ({ image: f, depth: f.replace(/rgb_(\d+)\.jpg$/, 'sync_depth_$1.png'), where: path.relative(input, f) }));
  }
  if (format === 'diode') {
    return files.filter((f) => f.endsWith('.png')).map((f) => ({ image: f, depth: f.replace(/\.png$/, '_depth.npy'), mask: f.replace(/\.png$/, '_depth_mask.npy'), where: path.relative(input, f) }));
  }
  throw new UserError('--format kitti needs --split-file (the Eigen split lists image and projected-depth pairs)');
}

/**
 * A little-endian float32/float64/bool/uint8 .npy array (format versions 1–3). Hand-written: the
 * format is a magic string, a Python-literal header and raw data, and no maintained npm package reads it.
 */
export function readNpy(file: string): { shape: number[]; data: Float32Array } {
  const b = fs.readFileSync(file);
  if (b.subarray(0, 6).toString('latin1') !== '\x93NUMPY') throw new Error('not a .npy file');
  const major = b[6]!;
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = b.subarray(start, start + hlen).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const shape = (/'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '').split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (/'fortran_order':\s*True/.test(header)) throw new Error('Fortran-ordered .npy is not supported');
  const n = shape.reduce((a, c) => a * c, 1);
  const at = start + hlen;
  const raw = new Uint8Array(b.buffer, b.byteOffset + at, b.length - at);
  const data = new Float32Array(n);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const size = { '<f4': 4, '<f8': 8, '|b1': 1, '|u1': 1 }[descr ?? ''];
  if (!size) throw new Error(`.npy dtype '${descr}' is not supported (float32, float64, bool, uint8)`);
  if (raw.byteLength < n * size) throw new Error(`.npy data is shorter than its shape [${shape.join(', ')}]`);
  for (let i = 0; i < n; i++) data[i] = size === 4 ? view.getFloat32(i * 4, true) : size === 8 ? view.getFloat64(i * 8, true) : raw[i]!;
  return { shape, data };
}

async function rgb(file: string): Promise<{ data: Uint8Array; h: number; w: number }> {
  const { data, info } = await sharp(file).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), h: info.height, w: info.width };
}

async function png16(file: string): Promise<{ data: Uint16Array; h: number; w: number }> {
  const { data, info } = await sharp(file).toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
  return { data: new Uint16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length)), h: info.height, w: info.width };
}

interface Row { image: Uint8Array; depth: Float32Array; valid: Uint8Array }

/** One pair -> a row at the format's frame size; throws an Error saying what is wrong. */
async function readRow(format: DepthFormat, p: Pair): Promise<Row> {
  if (!p.image) throw new Error('no image in the split file');
  if (!p.depth) throw new Error('no depth in the split file (None)');
  if (!fs.existsSync(p.image)) throw new Error(`missing image ${p.image}`);
  if (!fs.existsSync(p.depth)) throw new Error(`missing depth file ${p.depth}`);
  const img = await rgb(p.image).catch((err: unknown) => {
    throw new Error(`unreadable image ${p.image}: ${messageOf(err)}`);
  });
  let depth: Float32Array;
  let valid: Uint8Array;
  let dh: number;
  let dw: number;
  if (format === 'diode') {
    const d = readNpy(p.depth);
    [dh, dw] = [d.shape[0]!, d.shape[1]!];
    depth = d.data;
    valid = new Uint8Array(depth.length);
    const m = p.mask && fs.existsSync(p.mask) ? readNpy(p.mask).data : null;
    if (p.mask && !m) throw new Error(`missing depth mask ${p.mask}`);
    if (m && m.length !== depth.length) throw new Error(`depth mask ${p.mask} has ${m.length} values, depth ${depth.length}`);
    for (let i = 0; i < depth.length; i++) valid[i] = (m ? m[i]! > 0 : true) && depth[i]! > 0 ? 1 : 0;
  } else {
    const d = await png16(p.depth);
    [dh, dw] = [d.h, d.w];
    const scale = format === 'nyu' ? 1000 : 256; // millimetres; KITTI's value / 256 metres
    depth = Float32Array.from(d.data, (v) => v / scale);
    valid = Uint8Array.from(d.data, (v) => (v > 0 ? 1 : 0));
  }
  if (dh !== img.h || dw !== img.w) throw new Error(`size mismatch: image ${img.w}×${img.h}, depth ${dw}×${dh}`);
  const [fh, fw] = FRAME[format];
  if (format === 'kitti') {
    if (img.h < fh || img.w < fw) throw new Error(`frame ${img.w}×${img.h} is smaller than the KB crop ${fw}×${fh}`);
    const top = img.h - fh;
    const left = Math.floor((img.w - fw) / 2);
    const crop = <T extends Uint8Array | Float32Array>(v: T, c: number, make: (n: number) => T): T => {
      const out = make(fh * fw * c);
      for (let y = 0; y < fh; y++) out.set(v.subarray(((top + y) * img.w + left) * c, ((top + y) * img.w + left + fw) * c), y * fw * c);
      return out;
    };
    return { image: crop(img.data, 3, (n) => new Uint8Array(n)), depth: crop(depth, 1, (n) => new Float32Array(n)), valid: crop(valid, 1, (n) => new Uint8Array(n)) };
  }
  if (img.h !== fh || img.w !== fw) throw new Error(`frame ${img.w}×${img.h}, expected ${fw}×${fh} for ${format}`);
  return { image: img.data, depth, valid };
}

export async function prepareDepth(opts: PrepareOptions & { format?: string; splitFile?: string }, dir: string, bad: BadRows): Promise<Record<string, number>> {
  const format = opts.format as DepthFormat;
  if (!DEPTH_FORMATS.includes(format)) throw new UserError(`--format: '${opts.format}' is not one of ${DEPTH_FORMATS.join(', ')} (needed with --dataset depth)`);
  const pairs = pairsOf(format, opts.input, opts.splitFile);
  if (pairs.length === 0) throw new UserError(`--input ${opts.input}: no ${format} image/depth pairs found`);
  const [fh, fw] = FRAME[format];
  const schema = depthSchema(fh, fw, format);
  const only = opts.splitFile ? (/train/i.test(path.basename(opts.splitFile)) ? 'train' : 'test') : null;
  const toVal = only ? null : validationMask(pairs.length, opts.valFraction, opts.seed);
  const writers = new Map<string, ArrowFileWriter>();
  const writer = (split: string): ArrowFileWriter => {
    let w = writers.get(split);
    if (!w) writers.set(split, (w = new ArrowFileWriter(path.join(dir, `${split}.arrow`), schema)));
    return w;
  };
  for (const s of only ? [only] : ['train', 'validation']) writer(s);
  try {
    for (let i = 0; i < pairs.length; i++) {
      const p = pairs[i]!;
      const row = await readRow(format, p).catch((err: unknown) => err as Error);
      if (row instanceof Error) {
        bad.bad(p.where, `row ${i}`, row.message);
        continue;
      }
      writer(only ?? (toVal![i] ? 'validation' : 'train')).write(depthBatch(schema, row, 1));
    }
    const rows: Record<string, number> = {};
    for (const [s, w] of writers) {
      await w.close();
      rows[s] = w.rows;
    }
    return rows;
  } catch (err) {
    for (const w of writers.values()) w.abort();
    throw err;
  }
}

// Image-classification sources → image rows (uint8 H×W×3, HWC) + Int32 labels.
//  - CIFAR binary archives (https://www.cs.toronto.edu/~kriz/cifar.html): records of 1 label byte
//    (CIFAR-10) or coarse + fine bytes (CIFAR-100, the fine label is used) then 3072 bytes, 1024 per
//    channel, planar R, G, B. Stored at the native 32×32: the workers' RandomResizedCrop upsamples.
//  - imagefolder: Food-101 (`images/<class>/<id>.jpg` + `meta/train.txt`, `meta/test.txt`), or
//    `train/` + `test|validation|val/` of class folders, or one level of class folders split by
//    --val-fraction. Decoded with sharp, scaled to the short side then center-cropped (fit: cover).
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { UserError, messageOf } from '../errors.js';
import { imageSchema } from './arrow.js';
import { BadRows, FixedSplitWriter, log, validationMask, type PrepareOptions } from './prepare-common.js';

const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const CIFAR_PIXELS = 32 * 32;

/** Planar RGB (CIFAR's record layout) → interleaved HWC. */
function planarToHwc(src: Uint8Array, pixels: number, out = new Uint8Array(pixels * 3)): Uint8Array {
  for (let p = 0; p < pixels; p++) {
    out[3 * p] = src[p]!;
    out[3 * p + 1] = src[pixels + p]!;
    out[3 * p + 2] = src[2 * pixels + p]!;
  }
  return out;
}

function findCifarDir(input: string, names: string[]): string {
  const candidates = [input, ...(fs.existsSync(input) && fs.statSync(input).isDirectory() ? fs.readdirSync(input).map((d) => path.join(input, d)) : [])];
  const hit = candidates.find((d) => names.some((n) => fs.existsSync(path.join(d, n))));
  if (!hit) throw new UserError(`${input}: no CIFAR binary archive found (expected ${names.join(' or ')})`);
  return hit;
}

/** data_batch_1.bin … in numeric order (the original has 5; the demo set ships 1). */
function cifar10Batches(src: string): string[] {
  const names = fs.readdirSync(src).filter((f) => /^data_batch_\d+\.bin$/.test(f));
  return names.sort((a, b) => Number(a.match(/\d+/)![0]) - Number(b.match(/\d+/)![0]));
}

function readLines(file: string): string[] | undefined {
  if (!fs.existsSync(file)) return undefined;
  return fs.readFileSync(file, 'utf8').split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
}

export async function prepareCifar(opts: PrepareOptions, dir: string, bad: BadRows): Promise<Record<string, number>> {
  const c100 = opts.dataset === 'cifar100';
  const src = findCifarDir(opts.input, c100 ? ['train.bin'] : ['data_batch_1.bin', 'test_batch.bin']);
  const splits: Record<string, string[]> = c100
    ? { train: ['train.bin'], test: ['test.bin'] }
    : { train: cifar10Batches(src), test: ['test_batch.bin'] };
  const classes = c100
    ? readLines(path.join(src, 'fine_label_names.txt')) ?? Array.from({ length: 100 }, (_, i) => String(i))
    : readLines(path.join(src, 'batches.meta.txt')) ?? CIFAR10_CLASSES;
  const labelBytes = c100 ? 2 : 1;
  const record = labelBytes + 3 * CIFAR_PIXELS;
  const schema = imageSchema(32, 32, classes);
  const counts: Record<string, number> = {};
  for (const [split, files] of Object.entries(splits)) {
    const w = new FixedSplitWriter(path.join(dir, `${split}.arrow`), schema, 3 * CIFAR_PIXELS, (n) => new Uint8Array(n));
    const hwc = new Uint8Array(3 * CIFAR_PIXELS);
    try {
      for (const name of files) {
        const file = path.join(src, name);
        if (!fs.existsSync(file)) throw new UserError(`${file}: missing from the CIFAR archive`);
        const buf = fs.readFileSync(file);
        const whole = Math.floor(buf.length / record);
        for (let r = 0; r < whole; r++) {
          const rec = buf.subarray(r * record, (r + 1) * record);
          const label = rec[labelBytes - 1]!;
          if (label >= classes.length) {
            bad.bad(file, `row ${r}`, `label ${label} outside the ${classes.length} classes`);
            continue;
          }
          w.add(planarToHwc(rec.subarray(labelBytes), CIFAR_PIXELS, hwc), label);
        }
        if (buf.length % record !== 0) bad.bad(file, `row ${whole}`, `truncated record (${buf.length % record} of ${record} bytes)`);
      }
      await w.close();
    } catch (err) {
      w.abort();
      throw err;
    }
    counts[split] = w.rows;
  }
  return counts;
}

const IMAGE_EXT = /\.(jpe?g|png|webp|gif|tiff?|avif|bmp)$/i;

export interface ImageItem {
  file: string;
  label: number;
}

function classDirs(root: string): string[] {
  return fs.readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
}

function listFolder(root: string, classes: string[]): ImageItem[] {
  const items: ImageItem[] = [];
  classes.forEach((c, label) => {
    const d = path.join(root, c);
    if (!fs.existsSync(d)) return;
    for (const f of fs.readdirSync(d).sort()) if (IMAGE_EXT.test(f)) items.push({ file: path.join(d, f), label });
  });
  return items;
}

/** The imagefolder layouts, resolved to lists of files per split and the class names. */
export function imagefolderSplits(input: string, valFraction: number, seed: number): { classes: string[]; splits: Record<string, ImageItem[]> } {
  if (!fs.existsSync(input) || !fs.statSync(input).isDirectory()) throw new UserError(`${input}: not a directory`);
  const meta = path.join(input, 'meta');
  const train = readLines(path.join(meta, 'train.txt'));
  if (train && fs.existsSync(path.join(input, 'images'))) {
    const classes = readLines(path.join(meta, 'classes.txt')) ?? classDirs(path.join(input, 'images'));
    const index = new Map(classes.map((c, i) => [c, i]));
    const resolve = (list: string[], file: string): ImageItem[] =>
      list.map((id, k) => {
        const label = index.get(id.split('/')[0]!);
        if (label === undefined) throw new UserError(`${file}: line ${k + 1}: class of "${id}" is not in the class list`);
        const base = path.join(input, 'images', id);
        return { file: IMAGE_EXT.test(id) ? base : `${base}.jpg`, label };
      });
    const test = readLines(path.join(meta, 'test.txt')) ?? [];
    return { classes, splits: { train: resolve(train, path.join(meta, 'train.txt')), test: resolve(test, path.join(meta, 'test.txt')) } };
  }
  const evalName = ['test', 'validation', 'val'].find((n) => fs.existsSync(path.join(input, n)));
  if (fs.existsSync(path.join(input, 'train')) && evalName) {
    const classes = classDirs(path.join(input, 'train'));
    const split = evalName === 'test' ? 'test' : 'validation';
    return { classes, splits: { train: listFolder(path.join(input, 'train'), classes), [split]: listFolder(path.join(input, evalName), classes) } };
  }
  const classes = classDirs(input);
  if (classes.length === 0) throw new UserError(`${input}: no class folders (nor a Food-101 images/ + meta/ layout)`);
  const all = listFolder(input, classes);
  const isVal = validationMask(all.length, valFraction, seed);
  return { classes, splits: { train: all.filter((_, i) => !isVal[i]), validation: all.filter((_, i) => isVal[i]) } };
}

/** Decodes, scales the short side to `size` and center-crops to size × size; sRGB, alpha dropped. */
async function loadImage(file: string, size: number): Promise<Uint8Array> {
  const { data, info } = await sharp(file)
    .rotate()
    .resize(size, size, { fit: 'cover', position: 'centre', kernel: 'lanczos3' })
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== size || info.height !== size) {
    throw new Error(`decoded to ${info.width}×${info.height}×${info.channels}, expected ${size}×${size}×3`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

const IN_FLIGHT = 8;

export async function prepareImagefolder(opts: PrepareOptions, dir: string, bad: BadRows): Promise<Record<string, number>> {
  const size = opts.imageSize;
  if (!(Number.isInteger(size) && size >= 8)) throw new UserError(`--image-size must be an integer ≥ 8, got ${size}`);
  const { classes, splits } = imagefolderSplits(opts.input, opts.valFraction, opts.seed);
  const schema = imageSchema(size, size, classes);
  const counts: Record<string, number> = {};
  for (const [split, items] of Object.entries(splits)) {
    log.info({ split, images: items.length }, 'decoding images');
    const w = new FixedSplitWriter(path.join(dir, `${split}.arrow`), schema, size * size * 3, (n) => new Uint8Array(n));
    try {
      // Decode a window ahead in parallel (libvips threads) but write in list order.
      for (let at = 0; at < items.length; at += IN_FLIGHT) {
        const window = items.slice(at, at + IN_FLIGHT);
        const decoded = await Promise.all(window.map((it) => loadImage(it.file, size).catch((err: unknown) => err)));
        decoded.forEach((px, k) => {
          const it = window[k]!;
          if (px instanceof Uint8Array) w.add(px, it.label);
          else bad.bad(it.file, `row ${at + k} of ${split}`, `unreadable image: ${messageOf(px)}`);
        });
      }
      await w.close();
    } catch (err) {
      w.abort();
      throw err;
    }
    counts[split] = w.rows;
  }
  return counts;
}

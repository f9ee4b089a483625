// Image files in and out for the VAE and FID commands: a folder (or one file) of images read in
// sorted file-name order as 8-bit RGB, DiT's `center_crop_arr`, and PNG output (single images and
// a torchvision-style grid). Decoding and encoding are sharp's (libvips).
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { UserError, messageOf } from '../errors.js';

const IMAGE_FILE = /\.(jpe?g|png|webp|gif|tiff?|avif|bmp)$/i;

/** The image files of a folder (sorted by name, not recursive) or the one file given. */
export function listImageFiles(dirOrFile: string, flag = '--images'): string[] {
  if (!fs.existsSync(dirOrFile)) throw new UserError(`${flag} ${dirOrFile}: no such file or directory`);
  if (fs.statSync(dirOrFile).isFile()) return [dirOrFile];
  const files = fs.readdirSync(dirOrFile).filter((f) => IMAGE_FILE.test(f)).sort().map((f) => path.join(dirOrFile, f));
  if (files.length === 0) throw new UserError(`${flag} ${dirOrFile}: no image files (${IMAGE_FILE.source})`);
  return files;
}

export interface RgbImage {
  readonly data: Uint8Array;
  readonly height: number;
  readonly width: number;
}

async function rgb(img: sharp.Sharp, file: string): Promise<RgbImage> {
  try {
    const { data, info } = await img.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), height: info.height, width: info.width };
  } catch (err) {
    throw new UserError(`${file}: unreadable image: ${messageOf(err)}`);
  }
}

/** An image as it is stored: H × W × 3, 8-bit sRGB (EXIF orientation applied, alpha dropped). */
export function readRgb(file: string): Promise<RgbImage> {
  return rgb(sharp(file).rotate(), file);
}

/** PIL's BOX halving for even sides: each output pixel is the rounded mean of a 2 × 2 block. */
function halve(img: RgbImage): RgbImage {
  const h = img.height >> 1;
  const w = img.width >> 1;
  const out = new Uint8Array(h * w * 3);
  const W = img.width;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) {
        const a = ((2 * y) * W + 2 * x) * 3 + c;
        const b = ((2 * y + 1) * W + 2 * x) * 3 + c;
        out[(y * w + x) * 3 + c] = Math.round((img.data[a]! + img.data[a + 3]! + img.data[b]! + img.data[b + 3]!) / 4);
      }
    }
  }
  return { data: out, height: h, width: w };
}

/**
 * DiT's `center_crop_arr` (ADM's preprocessing): halve with a box filter while the short side is at
 * least 2 × size, scale the short side to `size` with a bicubic filter (sides rounded), then crop
 * the centre (offsets floored). Odd sides lose their last row/column before a halving, which PIL
 * instead spreads over the box weights: a sub-pixel difference.
 */
export async function centerCropArr(file: string, size: number): Promise<RgbImage> {
  let img = await readRgb(file);
  while (Math.min(img.height, img.width) >= 2 * size) {
    if (img.height % 2 || img.width % 2) img = await rgb(sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } }).extract({ left: 0, top: 0, width: img.width & ~1, height: img.height & ~1 }), file);
    img = halve(img);
  }
  const scale = size / Math.min(img.height, img.width);
  const w = Math.round(img.width * scale);
  const h = Math.round(img.height * scale);
  const top = (h - size) >> 1;
  const left = (w - size) >> 1;
  const raw = { raw: { width: img.width, height: img.height, channels: 3 as const } };
  return rgb(sharp(img.data, raw).resize(w, h, { fit: 'fill', kernel: 'cubic' }).extract({ left, top, width: size, height: size }), file);
}

/** Writes H × W × 3 8-bit pixels as a PNG. */
export async function writePng(file: string, data: Uint8Array, height: number, width: number): Promise<void> {
  await sharp(data, { raw: { width, height, channels: 3 } }).png().toFile(file);
}

/**
 * torchvision's make_grid: `cols` images per row, 2 px of black between and around them.
 * images: n back-to-back H × W × 3 images.
 */
export function gridImage(images: Uint8Array, n: number, height: number, width: number, cols = Math.ceil(Math.sqrt(n))): RgbImage {
  const pad = 2;
  const rows = Math.ceil(n / cols);
  const GH = rows * (height + pad) + pad;
  const GW = cols * (width + pad) + pad;
  const out = new Uint8Array(GH * GW * 3);
  for (let i = 0; i < n; i++) {
    const y0 = pad + Math.floor(i / cols) * (height + pad);
    const x0 = pad + (i % cols) * (width + pad);
    for (let y = 0; y < height; y++) {
      const src = (i * height + y) * width * 3;
      out.set(images.subarray(src, src + width * 3), ((y0 + y) * GW + x0) * 3);
    }
  }
  return { data: out, height: GH, width: GW };
}

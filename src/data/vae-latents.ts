// `data prepare --dataset food101|imagefolder --vae DIR`: images -> DiT latent rows
// (docs/dit.md#preparing-latents). Each image is centre-crop-resized as DiT's `center_crop_arr`
// (--image-size, 256 by default), encoded by the VAE in batches (progress logged), and stored as
// `latent` rows already × scaling_factor (docs/architecture.md#datasets); with --flip the
// horizontally flipped image follows as a row of its own, as fast-DiT extracts both.
//
// Resumable: every batch of encoded rows is written to `<out>.partial/<split>-<batch>.safetensors`
// as soon as it is done; a rerun with the same options reuses the batches found there (checked
// against the options they were made with) and encodes only the rest. The Arrow files are built
// from the batches at the end and the partial folder is removed.
import fs from 'node:fs';
import path from 'node:path';
import { openSafetensors, writeSafetensors } from '../checkpoint/safetensors.js';
import { UserError } from '../errors.js';
import { latentSchema } from './arrow.js';
import { centerCropArr } from './image-files.js';
import { imagefolderSplits } from './images.js';
import { FixedSplitWriter, log, type PrepareOptions } from './prepare-common.js';

/** What the CLI wires in: the VAE's encoder (this layer does not load models). */
export interface LatentEncoder {
  /** n images H × W × 3 (back to back, uint8) -> scaled latents [n, C, h, w]; `firstIndex` seeds posterior draws. */
  encode(pixels: Uint8Array, n: number, size: number, firstIndex: number): Promise<Float32Array>;
  /** [C, h, w] for a size × size image. */
  latentShape(size: number): number[];
  /** Identifies the VAE and its sampling, recorded in the partial batches so a resume cannot mix two. */
  readonly id: string;
}

export const VAE_BATCH = 16;

function flipped(img: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(img.length);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) out.set(img.subarray((y * size + x) * 3, (y * size + x) * 3 + 3), (y * size + size - 1 - x) * 3);
  return out;
}

export async function prepareVaeLatents(opts: PrepareOptions, dir: string, enc: LatentEncoder, flip: boolean): Promise<Record<string, number>> {
  const size = opts.imageSize;
  const { classes, splits } = imagefolderSplits(opts.input, opts.valFraction, opts.seed);
  const shape = enc.latentShape(size);
  const per = shape.reduce((a, b) => a * b, 1);
  const partial = `${path.resolve(opts.out)}.partial`;
  fs.mkdirSync(partial, { recursive: true });
  const stamp = JSON.stringify({ vae: enc.id, size, flip, input: path.resolve(opts.input), seed: opts.seed, valFraction: opts.valFraction });
  const counts: Record<string, number> = {};
  for (const [split, items] of Object.entries(splits)) {
    const started = Date.now();
    let reused = 0;
    const batches: string[] = [];
    for (let at = 0, b = 0; at < items.length; at += VAE_BATCH, b++) {
      const file = path.join(partial, `${split}-${String(b).padStart(6, '0')}.safetensors`);
      batches.push(file);
      if (fs.existsSync(file)) {
        const src = openSafetensors(file);
        const same = src.metadata.stamp === stamp;
        src.close();
        if (!same) throw new UserError(`${file}: made with other options (${src.metadata.stamp}); delete ${partial} to start over`);
        reused++;
        continue;
      }
      const window = items.slice(at, at + VAE_BATCH);
      const imgs = await Promise.all(window.map((it) => centerCropArr(it.file, size)));
      const rows = imgs.flatMap((im) => (flip ? [im.data, flipped(im.data, size)] : [im.data]));
      const labels = window.flatMap((it) => (flip ? [it.label, it.label] : [it.label]));
      const pixels = new Uint8Array(rows.length * size * size * 3);
      rows.forEach((r, i) => pixels.set(r, i * size * size * 3));
      const latents = await enc.encode(pixels, rows.length, size, at * (flip ? 2 : 1));
      writeSafetensors(file, {
        latents: { dtype: 'F32', shape: [rows.length, ...shape], data: latents },
        labels: { dtype: 'I32', shape: [rows.length], data: Int32Array.from(labels) },
      }, { stamp });
      log.info({ split, images: Math.min(at + VAE_BATCH, items.length), of: items.length, elapsed_s: (Date.now() - started) / 1000 }, 'encoding images to latents');
    }
    if (reused > 0) log.info({ split, batches: reused }, `resumed: ${reused} encoded batches reused from ${partial}`);
    const w = new FixedSplitWriter(path.join(dir, `${split}.arrow`), latentSchema(shape, classes), per, (n) => new Float32Array(n));
    try {
      for (const file of batches) {
        const src = openSafetensors(file);
        try {
          const z = src.read('latents').data as Float32Array;
          const y = src.read('labels').data as Int32Array;
          for (let i = 0; i < y.length; i++) w.add(z.subarray(i * per, (i + 1) * per), y[i]!);
        } finally {
          src.close();
        }
      }
      await w.close();
    } catch (err) {
      w.abort();
      throw err;
    }
    counts[split] = w.rows;
  }
  fs.rmSync(partial, { recursive: true, force: true });
  return counts;
}

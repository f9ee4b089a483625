// `onelora vae encode --vae DIR --images DIR_OR_FILE --out latents.safetensors [--vae-sample mean|sample]`
// and `onelora vae decode --vae DIR --latents FILE --out DIR` (docs/dit.md#the-vae): the two halves of
// the diffusers AutoencoderKL on their own. Latent files hold `latents` [N, C, h, w] F32 in the scaled
// space (× scaling_factor, as `sample` writes them); images are read and written in sorted
// file-name order (decode writes 000000.png, 000001.png, …).
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { initBackend } from '../../backend/select.js';
import { openSafetensors, writeSafetensors } from '../../checkpoint/safetensors.js';
import { centerCropArr, gridImage, listImageFiles, readRgb, writePng, type RgbImage } from '../../data/image-files.js';
import type { LatentEncoder } from '../../data/vae-latents.js';
import { UserError } from '../../errors.js';
import { childLog } from '../../log.js';
import type { VaeModel } from '../../models/vae.js';
import { loadVae } from '../../models/vae-load.js';
import { decodeLatents, encodeImages } from '../../models/vae-run.js';
import { backendOption, intFlag } from '../flags.js';
import { action, printResult } from '../run.js';

const log = childLog('vae');

/** Decodes scaled latents [n, C, h, w] and writes DIR/000000.png… (and the grid, when asked). */
export async function writeDecodedPngs(vae: VaeModel, latents: Float32Array, shape: readonly number[], outDir: string, grid?: string): Promise<{ files: string[]; grid?: string }> {
  const [n, c, h, w] = shape as [number, number, number, number];
  if (shape.length !== 4 || c !== vae.config.latentChannels) throw new UserError(`latents of shape [${shape.join(', ')}]: the VAE needs [N, ${vae.config.latentChannels}, h, w]`);
  fs.mkdirSync(outDir, { recursive: true });
  const f = vae.factor;
  const H = f * h;
  const W = f * w;
  const pix = H * W * 3;
  const all = new Uint8Array(n * pix);
  const files: string[] = [];
  const started = Date.now();
  for (let i = 0; i < n; i++) {
    const img = await decodeLatents(vae, latents.subarray(i * c * h * w, (i + 1) * c * h * w), 1, h, w);
    all.set(img, i * pix);
    const file = path.join(outDir, `${String(i).padStart(6, '0')}.png`);
    await writePng(file, img, H, W);
    files.push(file);
    log.info({ image: i + 1, of: n, elapsed_s: (Date.now() - started) / 1000 }, 'decoded');
  }
  if (grid !== undefined) {
    const g = gridImage(all, n, H, W);
    await writePng(grid, g.data, g.height, g.width);
  }
  return { files, grid };
}

/** The VAE as `data prepare --vae` uses it (the data layer does not load models). Dispose with `vae.dispose()`. */
export async function vaeLatentEncoder(dir: string, mode: string, seed: number): Promise<{ encoder: LatentEncoder; vae: VaeModel }> {
  if (mode !== 'mean' && mode !== 'sample') throw new UserError(`--vae-sample: expected mean or sample, got '${mode}'`);
  await initBackend();
  const vae = loadVae(dir);
  const f = vae.factor;
  return {
    vae,
    encoder: {
      id: `${path.resolve(dir)}|${mode}|${seed}`,
      latentShape: (size) => {
        if (size % f) throw new UserError(`--image-size ${size}: not a multiple of the VAE's factor ${f}`);
        return [vae.config.latentChannels, size / f, size / f];
      },
      encode: (pixels, n, size, firstIndex) => encodeImages(vae, pixels, n, size, size, { mode, seed, firstIndex }),
    },
  };
}

interface EncodeFlags {
  vae: string;
  images: string;
  out: string;
  vaeSample: string;
  seed: number;
  size?: number;
  backend?: string;
  json?: boolean;
}

async function runEncode(o: EncodeFlags): Promise<Record<string, unknown>> {
  if (o.vaeSample !== 'mean' && o.vaeSample !== 'sample') throw new UserError(`--vae-sample: expected mean or sample, got '${o.vaeSample}'`);
  const files = listImageFiles(o.images);
  await initBackend(o.backend);
  const vae = loadVae(o.vae);
  try {
    const imgs: RgbImage[] = [];
    for (const file of files) imgs.push(o.size !== undefined ? await centerCropArr(file, o.size) : await readRgb(file));
    const { height: H, width: W } = imgs[0]!;
    imgs.forEach((im, i) => {
      if (im.height !== H || im.width !== W) throw new UserError(`--images: ${files[i]} is ${im.width}×${im.height}, ${files[0]} is ${W}×${H}; pass --size N to centre-crop all to N×N`);
    });
    if (H % vae.factor || W % vae.factor) throw new UserError(`--images: ${W}×${H} is not a multiple of the VAE's factor ${vae.factor}; pass --size N`);
    const pixels = new Uint8Array(files.length * H * W * 3);
    imgs.forEach((im, i) => pixels.set(im.data, i * H * W * 3));
    const started = Date.now();
    const latents = await encodeImages(vae, pixels, files.length, H, W, { mode: o.vaeSample, seed: o.seed });
    const shape = [files.length, vae.config.latentChannels, H / vae.factor, W / vae.factor];
    writeSafetensors(o.out, { latents: { dtype: 'F32', shape, data: latents } }, {
      vae: o.vae, vae_sample: o.vaeSample, seed: String(o.seed), scaling_factor: String(vae.config.scalingFactor), files: JSON.stringify(files.map((f) => path.basename(f))),
    });
    return { out: o.out, shape, vae_sample: o.vaeSample, seconds: (Date.now() - started) / 1000 };
  } finally {
    vae.dispose();
  }
}

interface DecodeFlags {
  vae: string;
  latents: string;
  out: string;
  grid?: string;
  backend?: string;
  json?: boolean;
}

/** `latents` [N, C, h, w] from a latent file (what `sample` and `vae encode` write). */
function readLatentFile(file: string, flag: string): { data: Float32Array; shape: number[] } {
  if (!fs.existsSync(file)) throw new UserError(`${flag} ${file}: no such file`);
  const src = openSafetensors(file);
  try {
    const info = src.tensors.get('latents');
    if (!info) throw new UserError(`${flag} ${file}: no tensor 'latents' (tensors: ${[...src.tensors.keys()].join(', ')})`);
    if (info.shape.length !== 4) throw new UserError(`${flag} ${file}: 'latents' has shape [${info.shape.join(', ')}], expected [N, C, h, w]`);
    const t = src.read('latents');
    if (!(t.data instanceof Float32Array)) throw new UserError(`${flag} ${file}: 'latents' is ${t.dtype}, expected F32/F16/BF16`);
    return { data: t.data, shape: [...info.shape] };
  } finally {
    src.close();
  }
}

async function runDecode(o: DecodeFlags): Promise<Record<string, unknown>> {
  const { data, shape } = readLatentFile(o.latents, '--latents');
  await initBackend(o.backend);
  const vae = loadVae(o.vae);
  try {
    const started = Date.now();
    const r = await writeDecodedPngs(vae, data, shape, o.out, o.grid);
    return { out: o.out, images: r.files.length, grid: r.grid ?? null, seconds: (Date.now() - started) / 1000 };
  } finally {
    vae.dispose();
  }
}

export function registerVae(program: Command): void {
  const vae = program.command('vae').description('the diffusers AutoencoderKL (SD VAE): images ↔ scaled latents');
  vae.command('encode')
    .description('images (sorted file names) -> latents [N, C, H/8, W/8] × scaling_factor, as safetensors')
    .requiredOption('--vae <dir>', 'diffusers AutoencoderKL directory (or a pipeline directory with vae/)')
    .requiredOption('--images <dir|file>', 'a folder of images or one image')
    .requiredOption('--out <file>', 'output .safetensors (tensor `latents`)')
    .option('--vae-sample <mode>', 'mean (deterministic) | sample (seeded draw from the posterior)', 'mean')
    .option('--seed <s>', 'seed of the posterior draws', intFlag(0), 0)
    .option('--size <n>', "centre-crop-resize every image to n×n first (DiT's center_crop_arr)", intFlag(8))
    .addOption(backendOption())
    .option('--json', 'one JSON object on the last line')
    .action(action(async (o: EncodeFlags) => {
      const r = await runEncode(o);
      printResult(!!o.json, r, `wrote latents [${(r.shape as number[]).join(', ')}] to ${o.out}`);
    }));
  vae.command('decode')
    .description('latents [N, C, h, w] (scaled, as sample writes them) -> DIR/000000.png …')
    .requiredOption('--vae <dir>', 'diffusers AutoencoderKL directory (or a pipeline directory with vae/)')
    .requiredOption('--latents <file>', 'a .safetensors with `latents`')
    .requiredOption('--out <dir>', 'output folder for the PNGs')
    .option('--grid <file>', 'also write all images as one grid PNG')
    .addOption(backendOption())
    .option('--json', 'one JSON object on the last line')
    .action(action(async (o: DecodeFlags) => {
      const r = await runDecode(o);
      printResult(!!o.json, r, `wrote ${String(r.images)} PNGs to ${o.out}`);
    }));
}

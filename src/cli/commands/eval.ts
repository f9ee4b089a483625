// `onelora eval fid`: the Fréchet distance (docs/dit.md#fid), two ways:
//  - `--real F --fake F`: between two pre-computed feature or statistics files (.safetensors with
//    `features` [N, D], Arrow column `features`, .npy [N, D], or .npz with mu/sigma);
//  - `--images DIR_OR_ARROW --ref DIR|ARROW|stats.npz [--inception FILE] [--save-stats FILE.npz]`:
//    Inception pool3 features of images, as pytorch-fid computes FID.
import fs from 'node:fs';
import type { Command } from 'commander';
import { initBackend } from '../../backend/select.js';
import { loadConfig } from '../../config/index.js';
import { UserError } from '../../errors.js';
import { fidFromFiles } from '../../eval/fid.js';
import { fidFromImages } from '../../eval/fid-images.js';
import { ditFid } from '../../eval/dit-fid.js';
import { backendOption, floatFlag, intFlag } from '../flags.js';
import { registerEvalDepth } from './depth.js';
import { action, printResult } from '../run.js';

/** Where the converted FID Inception weights are looked for when --inception is not given. */
const DEFAULT_INCEPTION = 'models/fid-inception.safetensors';

function inceptionFile(flag: string | undefined): string {
  const file = flag ?? process.env.ONELORA_FID_INCEPTION ?? DEFAULT_INCEPTION;
  if (!fs.existsSync(file)) {
    throw new UserError(`--inception ${file}: no such file; convert pytorch-fid's pt_inception-2015-12-05-*.pth with scripts/convert-fid-inception.py (docs/dit.md#fid)`);
  }
  return file;
}

interface FidFlags {
  real?: string;
  fake?: string;
  images?: string;
  ref?: string;
  inception?: string;
  saveStats?: string;
  batch: number;
  backend?: string;
  json?: boolean;
}

interface DitFidFlags {
  model: string;
  adapter?: string;
  vae: string;
  ref: string;
  out: string;
  num: number;
  batch: number;
  steps: number;
  config?: string;
  cfg?: number;
  sampler: string;
  seed: number;
  inception?: string;
  backend?: string;
  json?: boolean;
}

/** DiT's FID guidance scale, used when neither --cfg nor --config gives one. */
const DIT_FID_CFG = 1.5;

/** The guidance a diffusion run config samples with (`diffusion.sample_cfg`); undefined without --config. */
function configGuidance(file: string | undefined): number | undefined {
  if (file === undefined) return undefined;
  const cfg = loadConfig(file);
  if (cfg.task !== 'diffusion') throw new UserError(`--config ${file}: task is '${cfg.task}', not diffusion; it has no guidance scale to sample with`);
  return cfg.diffusion.sample_cfg;
}

export function registerEval(program: Command): void {
  const ev = program.command('eval').description('evaluation metrics');
  ev.command('fid')
    .description('Fréchet distance: of images (Inception pool3, as pytorch-fid) or of two feature/statistics files')
    .option('--real <file>', 'reference features/statistics (.safetensors, .arrow, .npy, .npz)')
    .option('--fake <file>', 'generated features/statistics (same formats)')
    .option('--images <dir|arrow>', 'images to score (a folder, or an image Arrow file)')
    .option('--ref <dir|arrow|npz>', 'reference images, or pytorch-fid/ADM statistics (.npz: mu/sigma, or arr_0 images)')
    .option('--inception <file>', `FID Inception weights (safetensors or .pth; default $ONELORA_FID_INCEPTION or ${DEFAULT_INCEPTION})`)
    .option('--save-stats <file.npz>', "write the images' mu/sigma as pytorch-fid does")
    .option('--batch <n>', 'images per Inception batch', intFlag(1), 8)
    .addOption(backendOption())
    .option('--json', 'one JSON object on the last line')
    .action(action(async (o: FidFlags) => {
      if (o.images !== undefined) {
        if (o.real !== undefined || o.fake !== undefined) throw new UserError('eval fid: give either --images (with --ref/--save-stats) or --real and --fake');
        await initBackend(o.backend);
        const r = await fidFromImages({ images: o.images, ref: o.ref, inception: inceptionFile(o.inception), saveStats: o.saveStats, batch: o.batch });
        printResult(!!o.json, r, r.fid === null ? `wrote statistics of ${r.n_images} images to ${r.stats}` : `FID ${r.fid.toFixed(4)} (${r.n_images} images vs ${o.ref})`);
        return;
      }
      if (o.real === undefined || o.fake === undefined) throw new UserError('eval fid: give --real and --fake, or --images with --ref');
      const r = fidFromFiles(o.real, o.fake);
      printResult(!!o.json, r, `FID ${r.fid.toFixed(4)} (${r.n_real} real, ${r.n_fake} fake, ${r.dim} features)`);
    }));
  ev.command('dit-fid')
    .description("DiT's protocol: --num samples (classes uniform, guidance), decoded to PNGs, FID against --ref; resumable")
    .requiredOption('--model <dir|preset>', 'a DiT directory or preset')
    .option('--adapter <dir>', 'an adapter directory to apply first')
    .requiredOption('--vae <dir>', 'diffusers AutoencoderKL')
    .requiredOption('--ref <dir|arrow|npz>', 'reference images or statistics (as eval fid --ref)')
    .requiredOption('--out <dir>', 'where images/, stats.npz go (rerun with the same flags to resume)')
    .option('--num <n>', 'samples (DiT reports FID-50K; 10000 is common for fine-tuning)', intFlag(2), 10000)
    .option('--batch <n>', 'samples per batch', intFlag(1), 16)
    .option('--steps <n>', 'sampling steps', intFlag(1), 250)
    .option('--config <file>', "a diffusion run's config (e.g. the run's config.yaml): its diffusion.sample_cfg is the guidance scale")
    .option('--cfg <g>', "classifier-free guidance scale (overrides --config's; default 1.5, DiT's FID setting)", floatFlag())
    .option('--sampler <name>', 'ddpm|ddim', 'ddpm')
    .option('--seed <s>', 'seed of classes and noise', intFlag(0), 0)
    .option('--inception <file>', `FID Inception weights (default $ONELORA_FID_INCEPTION or ${DEFAULT_INCEPTION})`)
    .addOption(backendOption())
    .option('--json', 'one JSON object on the last line')
    .action(action(async (o: DitFidFlags) => {
      if (o.sampler !== 'ddpm' && o.sampler !== 'ddim') throw new UserError(`--sampler: expected ddpm or ddim, got '${o.sampler}'`);
      if (o.cfg !== undefined && o.cfg < 1) throw new UserError(`--cfg: guidance scale must be ≥ 1, got ${o.cfg}`);
      const cfg = o.cfg ?? configGuidance(o.config) ?? DIT_FID_CFG;
      const inception = inceptionFile(o.inception);
      await initBackend(o.backend);
      const r = await ditFid({ ...o, cfg, sampler: o.sampler, inception });
      printResult(!!o.json, r, `FID ${r.fid!.toFixed(4)} of ${r.samples} samples (${r.reused} reused) vs ${o.ref}`);
    }));
  registerEvalDepth(ev);
}

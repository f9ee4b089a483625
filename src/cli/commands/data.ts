// `onelora data prepare` and `onelora data inspect` (docs/architecture.md#datasets and #cli-conventions): turn a source into Arrow
// IPC datasets, and look at one.
import type { Command } from 'commander';
import { UserError } from '../../errors.js';
import { formatInspectReport, inspect } from '../../data/inspect.js';
import { DATASETS, DEFAULTS, formatPrepareReport, prepare, type DatasetName } from '../../data/prepare.js';
import { floatFlag, intFlag } from '../flags.js';
import { action, printResult } from '../run.js';
import { vaeLatentEncoder } from './vae.js';

interface PrepareFlags {
  dataset: string;
  input: string;
  out: string;
  tokenizer: string;
  valFraction: number;
  seed: number;
  maxLen: number;
  skipBad?: boolean;
  imageSize: number;
  latentScale: number;
  vae?: string;
  vaeSample: string;
  flip?: boolean;
  format?: string;
  splitFile?: string;
  json?: boolean;
}

export function registerData(program: Command): void {
  const data = program.command('data').description('prepare and inspect Arrow IPC datasets');
  data
    .command('prepare')
    .description('convert MetaMathQA JSON/JSONL, CIFAR binaries, an image folder or DiT latents into train/validation Arrow files')
    .requiredOption('--dataset <name>', DATASETS.join('|'))
    .requiredOption('--input <path>', 'input file or directory')
    .requiredOption('--out <dir>', 'output directory (replaced whole when it already holds a dataset)')
    .option('--tokenizer <spec>', 'metamath: llama-2 or a directory with tokenizer.json / tokenizer.model', DEFAULTS.tokenizer)
    .option('--val-fraction <f>', 'held-out share when the input has no split of its own', floatFlag(), DEFAULTS.valFraction)
    .option('--seed <n>', 'seed of the train/validation split', intFlag(), DEFAULTS.seed)
    .option('--max-len <n>', 'metamath: tokens per row; longer rows are cut and counted', intFlag(2), DEFAULTS.maxLen)
    .option('--skip-bad', 'skip bad input rows and count them instead of stopping at the first')
    .option('--image-size <n>', 'imagefolder: stored square side (short side scaled, then center-cropped)', intFlag(8), DEFAULTS.imageSize)
    .option('--latent-scale <f>', 'latents: factor applied to the input latents', floatFlag(), DEFAULTS.latentScale)
    .option('--vae <dir>', 'imagefolder/food101: encode the images with this diffusers AutoencoderKL into DiT latent rows (resumable)')
    .option('--vae-sample <mode>', 'with --vae: mean | sample (seeded by --seed)', 'mean')
    .option('--flip', 'with --vae: also store each image\'s horizontally flipped latent')
    .option('--format <name>', 'depth: nyu|kitti|diode (docs/depth.md#data)')
    .option('--split-file <file>', 'depth: a BTS/Eigen split file of image and depth paths under --input')
    .option('--json', 'one JSON object on the last line')
    .action(action(async (o: PrepareFlags) => {
      if (!(DATASETS as readonly string[]).includes(o.dataset)) throw new UserError(`--dataset ${o.dataset}: expected one of ${DATASETS.join(', ')}`);
      if (o.flip && o.vae === undefined) throw new UserError('--flip: only with --vae');
      const vae = o.vae !== undefined ? await vaeLatentEncoder(o.vae, o.vaeSample, o.seed) : null;
      try {
        const report = await prepare({
          dataset: o.dataset as DatasetName, input: o.input, out: o.out, tokenizer: o.tokenizer, valFraction: o.valFraction,
          seed: o.seed, maxLen: o.maxLen, skipBad: !!o.skipBad, imageSize: o.imageSize, latentScale: o.latentScale, format: o.format, splitFile: o.splitFile,
        }, vae ? { encoder: vae.encoder, flip: !!o.flip } : undefined);
        printResult(!!o.json, report, formatPrepareReport(report));
      } finally {
        vae?.vae.dispose();
      }
    }));
  data
    .command('inspect')
    .description('row counts, length histogram or label distribution, and a decoded example')
    .argument('<dir>', 'a prepared dataset directory')
    .option('--json', 'one JSON object on the last line')
    .action(action((dir: string, o: { json?: boolean }) => {
      const report = inspect(dir);
      printResult(!!o.json, report, formatInspectReport(report));
    }));
}

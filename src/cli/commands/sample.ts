// `onelora sample --model DIR|PRESET [--adapter DIR] --class N [--steps S] [--cfg G]
//  [--sampler ddpm|ddim] [--eta E] [--num N] [--vae DIR] [--seed S] --out FILE|DIR [--json]` (docs/architecture.md#cli-conventions):
// class-conditional DiT latents with classifier-free guidance, written as safetensors
// (`latents` [N, C, H, W] F32, in the VAE's scaled space, and `labels` [N] I32; the settings in
// the metadata); with `--vae DIR --out DIR` also decoded to PNGs and a grid. Defaults are DiT's sample.py: 250 DDPM steps, guidance 4.
import path from 'node:path';
import fs from 'node:fs';
import type { Command } from 'commander';
import { initBackend } from '../../backend/select.js';
import { writeSafetensors } from '../../checkpoint/safetensors.js';
import { UserError } from '../../errors.js';
import { childLog } from '../../log.js';
import { sampleLatents, type SamplerName } from '../../models/diffusion.js';
import type { DitModel } from '../../models/dit.js';
import { adapterDitClasses, loadDit } from '../../models/dit-load.js';
import { loadVae } from '../../models/vae-load.js';
import { backendOption, floatFlag, intFlag } from '../flags.js';
import { writeDecodedPngs } from './vae.js';
import { action, printResult } from '../run.js';

const log = childLog('sample');

export interface SampleFlags {
  model: string;
  adapter?: string;
  class: number;
  steps: number;
  cfg: number;
  sampler: string;
  eta: number;
  num: number;
  vae?: string;
  seed: number;
  out: string;
  backend?: string;
  json?: boolean;
}

/** What the integrator wires in: the PEFT library's adapter loader (kept out of this module's imports). */
export interface SampleHooks {
  /** Applies the adapter in `dir` to `model`; what it returns is disposed before the model. */
  readonly applyAdapter?: (model: DitModel, dir: string) => Promise<{ dispose(): void } | void> | { dispose(): void } | void;
}

export interface SampleResult {
  readonly out: string;
  readonly shape: number[];
  readonly class: number;
  readonly steps: number;
  readonly cfg: number;
  readonly sampler: SamplerName;
  readonly seed: number;
  /** With --vae and --out DIR: how many PNGs were written, and the grid. */
  readonly images?: number;
  readonly grid?: string;
}

export async function runSample(f: SampleFlags, hooks: SampleHooks = {}): Promise<SampleResult> {
  if (f.sampler !== 'ddpm' && f.sampler !== 'ddim') throw new UserError(`--sampler: expected ddpm or ddim, got '${f.sampler}'`);
  const toImages = !f.out.endsWith('.safetensors');
  if (toImages && f.vae === undefined) throw new UserError(`--out ${f.out}: without --vae the output is latents, a FILE.safetensors; with --vae DIR it is a folder of PNGs`);
  if (f.cfg < 1) throw new UserError(`--cfg: guidance scale must be ≥ 1 (1 = no guidance), got ${f.cfg}`);
  const outDir = path.dirname(path.resolve(f.out));
  if (!fs.existsSync(outDir)) throw new UserError(`--out ${f.out}: directory ${outDir} does not exist`);
  await initBackend(f.backend);
  const vae = f.vae !== undefined ? loadVae(f.vae) : null;
  if (f.adapter !== undefined && !hooks.applyAdapter) throw new UserError('--adapter: no adapter loader is wired into this command');
  if (f.adapter !== undefined && !fs.existsSync(path.join(f.adapter, 'adapter_model.safetensors'))) throw new UserError(`--adapter ${f.adapter}: no adapter_model.safetensors`);
  const numClasses = f.adapter !== undefined ? adapterDitClasses(f.adapter) : undefined;
  const model = loadDit(f.model, { seed: f.seed, numClasses });
  let adapter: { dispose(): void } | void = undefined;
  try {
    if (f.adapter !== undefined) {
      try {
        adapter = await hooks.applyAdapter!(model, f.adapter);
      } catch (err) {
        if (err instanceof UserError) throw new UserError(`--adapter: ${err.message}`, { cause: err });
        throw err;
      }
    }
    const c = model.config;
    if (!Number.isInteger(f.class) || f.class < 0 || f.class >= c.numClasses) throw new UserError(`--class ${f.class}: ${c.name} has classes 0..${c.numClasses - 1}`);
    const started = Date.now();
    const z = sampleLatents(model, new Array<number>(f.num).fill(f.class), {
      steps: f.steps, cfg: f.cfg, sampler: f.sampler, eta: f.eta, seed: f.seed,
      onStep: (i) => {
        if (i % 50 === 0) log.info({ step: i, elapsed_s: (Date.now() - started) / 1000 }, 'sampling');
      },
    });
    const data = Float32Array.from(await z.data());
    const shape = [...z.shape];
    z.dispose();
    if (toImages) fs.mkdirSync(f.out, { recursive: true });
    const latentFile = toImages ? path.join(f.out, 'latents.safetensors') : f.out;
    writeSafetensors(latentFile, {
      latents: { dtype: 'F32', shape, data },
      labels: { dtype: 'I32', shape: [f.num], data: new Int32Array(f.num).fill(f.class) },
    }, { model: f.model, class: String(f.class), steps: String(f.steps), cfg: String(f.cfg), sampler: f.sampler, eta: String(f.eta), seed: String(f.seed) });
    // With a VAE: DIR/images/000000.png …, DIR/grid.png, and the latents beside them.
    const png = vae && toImages ? await writeDecodedPngs(vae, data, shape, path.join(f.out, 'images'), path.join(f.out, 'grid.png')) : null;
    return { out: f.out, shape, class: f.class, steps: f.steps, cfg: f.cfg, sampler: f.sampler, seed: f.seed, ...(png ? { images: png.files.length, grid: png.grid! } : {}) };
  } finally {
    adapter?.dispose();
    model.dispose();
    vae?.dispose();
  }
}

export function registerSample(program: Command, hooks: SampleHooks = {}): void {
  program
    .command('sample')
    .description('class-conditional DiT latents (classifier-free guidance), written as safetensors')
    .requiredOption('--model <dir|preset>', 'a DiT directory (diffusers or facebookresearch layout) or preset')
    .option('--adapter <dir>', 'an adapter directory to apply first')
    .requiredOption('--class <n>', 'class label', intFlag(0))
    .option('--steps <n>', 'sampling steps (respaced from 1000)', intFlag(1), 250)
    .option('--cfg <g>', 'classifier-free guidance scale (1 = off)', floatFlag(), 4)
    .option('--sampler <name>', 'ddpm|ddim', 'ddpm')
    .option('--eta <e>', 'DDIM η (0 = deterministic)', floatFlag(), 0)
    .option('--num <n>', 'how many latents', intFlag(1), 1)
    .option('--vae <dir>', 'diffusers AutoencoderKL: decode to DIR/images/*.png + DIR/grid.png (with --out DIR)')
    .option('--seed <s>', 'seed of the noise (and of a preset\'s random weights)', intFlag(0), 0)
    .requiredOption('--out <file|dir>', 'FILE.safetensors for latents; with --vae a folder for PNGs')
    .addOption(backendOption())
    .option('--json', 'one JSON object on the last line')
    .action(action(async (opts: SampleFlags) => {
      const r = await runSample(opts, hooks);
      printResult(!!opts.json, r, r.images !== undefined ? `wrote ${r.images} images of class ${r.class} to ${r.out} (grid ${r.grid})` : `wrote ${r.shape.join('×')} latents of class ${r.class} to ${r.out}`);
    }));
}

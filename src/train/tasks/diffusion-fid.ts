// What a diffusion run with `diffusion.vae` set shows before its first step and after its last
// (docs/dit.md#sample-grids-and-fid): `diffusion.fid_samples` class-conditional samples (the classes of
// the validation rows, in row order, so each class is as frequent as among the held-out images),
// decoded by the VAE into OUTPUT/samples/{before,after}/grid.png (the held-out images in
// OUTPUT/samples/held-out.png), and their FID against the
// validation latents decoded by the same VAE (the held-out images), measured with the tiny
// random-feature network of src/eval/tiny-fid.ts. Before and after use the same start noise and
// classes, so the two figures differ by the training alone.
import path from 'node:path';
import fs from 'node:fs';
import type { Dataset } from '../../data/arrow-file.js';
import { readFixed } from '../../data/arrow.js';
import { gridImage, writePng } from '../../data/image-files.js';
import { UserError } from '../../errors.js';
import { frechetDistance, type FeatureStats } from '../../eval/fid.js';
import { TINY_FID_NETWORK, TinyFidNet } from '../../eval/tiny-fid.js';
import { sampleLatents } from '../../models/diffusion.js';
import type { DitModel } from '../../models/dit.js';
import type { VaeModel } from '../../models/vae.js';
import { loadVae } from '../../models/vae-load.js';
import { decodeLatents } from '../../models/vae-run.js';
import { mixSeed } from '../../nn/rng.js';

interface SampleFidConfig {
  readonly vae: string;
  readonly fid_samples: number;
  readonly sample_steps: number;
  readonly sample_cfg: number;
}

/** summary.json's `fid`: the figures, what they were measured with, and the grids. */
export interface SampleFidRecord {
  network: string;
  samples: number;
  reference: number;
  sampler: string;
  before: number | null;
  after: number | null;
  grid_before?: string;
  grid_after?: string;
}

/** Keeps the samples' noise apart from the training draws of the same seed. */
const SALT = 0xf1d;

/** One column per class when the classes cycle (the demo's 10 classes in a 10 × 10 grid). */
async function writeGrid(file: string, px: Uint8Array, n: number, H: number, W: number): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const g = gridImage(px, n, H, W);
  await writePng(file, g.data, g.height, g.width);
}

export class SampleFid {
  private readonly net = new TinyFidNet();
  private ref: FeatureStats | null = null;
  private readonly labels: number[];
  private readonly latents: Float32Array;
  private readonly nRef: number;

  private constructor(private readonly vae: VaeModel, validation: Dataset, private readonly cfg: SampleFidConfig, private readonly seed: number) {
    this.nRef = validation.numRows;
    const rows = readFixed<Float32Array>(validation.rows(Array.from({ length: this.nRef }, (_, i) => i)), 'latent');
    this.latents = rows.values;
    this.labels = Array.from({ length: cfg.fid_samples }, (_, i) => rows.labels[i % this.nRef]!);
  }

  static open(cfg: SampleFidConfig, validation: Dataset | null, seed: number): SampleFid {
    if (!validation) throw new UserError('diffusion.vae: the sample FID is measured against the validation latents, and data.validation is not set');
    if (validation.numRows < 2) throw new UserError(`diffusion.vae: data.validation has ${validation.numRows} row(s); an FID needs at least 2 held-out images`);
    if (!fs.existsSync(cfg.vae)) throw new UserError(`diffusion.vae: ${cfg.vae} does not exist`);
    return new SampleFid(loadVae(cfg.vae), validation, cfg, seed);
  }

  private async decode(latents: Float32Array, n: number, h: number, w: number): Promise<{ px: Uint8Array; H: number; W: number }> {
    const f = this.vae.factor;
    return { px: await decodeLatents(this.vae, latents, n, h, w, 16), H: f * h, W: f * w };
  }

  /** Samples with `model` as it is now, writes `dir/grid.png`; the FID against the held-out images. */
  async measure(model: DitModel, dir: string): Promise<{ fid: number; grid: string }> {
    const c = model.config;
    const h = c.inputSize;
    if (this.vae.config.latentChannels !== c.inChannels) throw new UserError(`diffusion.vae: ${this.cfg.vae} has ${this.vae.config.latentChannels} latent channels, the model ${c.inChannels}`);
    if (!this.ref) {
      const { px, H, W } = await this.decode(this.latents, this.nRef, h, h);
      this.ref = await this.net.stats(px, this.nRef, H, W);
      // The held-out images beside the samples' grids, to compare by eye.
      await writeGrid(path.join(path.dirname(dir), 'held-out.png'), px, this.nRef, H, W);
    }
    const z = sampleLatents(model, this.labels, { steps: this.cfg.sample_steps, cfg: this.cfg.sample_cfg, sampler: 'ddim', eta: 0, seed: mixSeed(this.seed, SALT) });
    const data = Float32Array.from(await z.data());
    z.dispose();
    const n = this.labels.length;
    const { px, H, W } = await this.decode(data, n, h, h);
    const grid = path.join(dir, 'grid.png');
    await writeGrid(grid, px, n, H, W);
    return { fid: frechetDistance(this.ref, await this.net.stats(px, n, H, W)), grid };
  }

  describe(): Omit<SampleFidRecord, 'before' | 'after'> {
    return { network: TINY_FID_NETWORK, samples: this.labels.length, reference: this.nRef, sampler: `ddim ${this.cfg.sample_steps} steps, cfg ${this.cfg.sample_cfg}` };
  }

  dispose(): void {
    this.net.dispose();
    this.vae.dispose();
  }
}

// `onelora eval dit-fid`: DiT's evaluation protocol in one command (docs/dit.md#fid): `--num`
// class-conditional samples (10,000 or 50,000 in the DiT paper), classes drawn uniformly, with
// classifier-free guidance (--cfg, else the run config's diffusion.sample_cfg, else 1.5, DiT's FID
// setting), decoded by the VAE to PNGs, then FID of those against the reference, as `eval fid --images`.
// Resumable: samples are made in batches, batch b holding samples [b·B, (b+1)·B) with its start
// noise seeded by (seed, b) and sample i's class by (seed, i), so the PNGs a run finds already
// written are kept and the rest come out as an uninterrupted run would make them.
import fs from 'node:fs';
import path from 'node:path';
import { writePng } from '../data/image-files.js';
import { childLog } from '../log.js';
import { sampleLatents, type SamplerName } from '../models/diffusion.js';
import { ditAdapterTranslation } from '../models/dit-adapter.js';
import { adapterDitClasses, loadDit } from '../models/dit-load.js';
import type { VaeModel } from '../models/vae.js';
import { loadVae } from '../models/vae-load.js';
import { decodeLatents } from '../models/vae-run.js';
import { mixSeed, Rng } from '../nn/rng.js';
import { loadAdapter } from '../peft/adapter-io.js';
import { fidFromImages, type FidImagesResult } from './fid-images.js';

const log = childLog('dit-fid');

export interface DitFidOptions {
  readonly model: string;
  readonly adapter?: string;
  readonly vae: string;
  readonly ref: string;
  readonly inception: string;
  readonly out: string;
  readonly num: number;
  readonly batch: number;
  readonly steps: number;
  readonly cfg: number;
  readonly sampler: SamplerName;
  readonly seed: number;
}

export interface DitFidResult extends FidImagesResult {
  readonly samples: number;
  /** Samples found already written (a resumed run). */
  readonly reused: number;
  readonly images: string;
  readonly cfg: number;
  readonly steps: number;
}

const pngName = (i: number): string => `${String(i).padStart(6, '0')}.png`;

/** Sample i's class: uniform over the model's classes, from (seed, i). */
function sampleClass(seed: number, i: number, numClasses: number): number {
  return Rng.from(seed, 0xc1a55, i).int(numClasses);
}

async function decodeBatch(vae: VaeModel, latents: Float32Array, shape: readonly number[], dir: string, first: number): Promise<void> {
  const [n, c, h, w] = shape as [number, number, number, number];
  const f = vae.factor;
  for (let j = 0; j < n; j++) {
    const img = await decodeLatents(vae, latents.subarray(j * c * h * w, (j + 1) * c * h * w), 1, h, w);
    await writePng(path.join(dir, pngName(first + j)), img, f * h, f * w);
  }
}

export async function ditFid(o: DitFidOptions): Promise<DitFidResult> {
  const images = path.join(o.out, 'images');
  fs.mkdirSync(images, { recursive: true });
  const numClasses = o.adapter !== undefined ? adapterDitClasses(o.adapter) : undefined;
  const model = loadDit(o.model, { seed: o.seed, numClasses });
  const peft = o.adapter !== undefined ? loadAdapter(o.adapter, model, ditAdapterTranslation(model.config.depth)) : null;
  const vae = loadVae(o.vae);
  let reused = 0;
  try {
    const started = Date.now();
    for (let first = 0, b = 0; first < o.num; first += o.batch, b++) {
      const n = Math.min(o.batch, o.num - first);
      if (Array.from({ length: n }, (_, j) => fs.existsSync(path.join(images, pngName(first + j)))).every(Boolean)) {
        reused += n;
        continue;
      }
      const labels = Array.from({ length: n }, (_, j) => sampleClass(o.seed, first + j, model.config.numClasses));
      const z = sampleLatents(model, labels, { steps: o.steps, cfg: o.cfg, sampler: o.sampler, seed: mixSeed(o.seed, b) });
      const data = Float32Array.from(await z.data());
      const shape = [...z.shape];
      z.dispose();
      await decodeBatch(vae, data, shape, images, first);
      const done = first + n;
      const rate = (done - reused) / Math.max(1e-9, (Date.now() - started) / 1000);
      log.info({ samples: done, of: o.num, per_s: +rate.toFixed(3), eta_s: Math.round((o.num - done) / rate) }, 'sampling');
    }
  } finally {
    peft?.dispose();
    model.dispose();
    vae.dispose();
  }
  if (reused > 0) log.info({ reused }, `resumed: ${reused} samples were already in ${images}`);
  const fid = await fidFromImages({ images, ref: o.ref, inception: o.inception, saveStats: path.join(o.out, 'stats.npz') });
  return { ...fid, samples: o.num, reused, images, cfg: o.cfg, steps: o.steps };
}

// `node --import tsx scripts/make-demo-latents.ts`: the tiny-dit-demo's data, deterministically.
// 10 classes of Gaussian blobs in a 4×8×8 latent space (tiny-dit's input): class k puts a blob of
// width ~1.2 cells at the k-th of ten points on a ring, with a per-channel sign pattern of its
// own; each sample jitters the centre (±0.5 cell) and the amplitude (0.8–1.2) and adds N(0, 0.1²).
// Values stay within about ±1.4, the range of SD-VAE latents scaled by 0.18215. The file is
// prepared through the public path (`onelora data prepare --dataset latents`) into
// data/demo/latents-arrow/ (train + validation), which the repo ships.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeSafetensors } from '../src/checkpoint/safetensors.js';
import { repoRoot } from '../src/config/index.js';
import { prepare } from '../src/data/prepare.js';
import { Rng } from '../src/nn/rng.js';

export const LATENT_SHAPE = [4, 8, 8] as const;
export const CLASSES = 10;

/**
 * `perClass` latents of each class, classes interleaved: latents [N, 4, 8, 8] and labels [N].
 * `variant` 1 is another task of the same kind (scripts/make-demo-dit.ts pre-trains on it): wider
 * blobs (width 1.8) on a smaller ring (radius 1.5), half-way between the demo's angles, positive in
 * every channel, so the demo's sign patterns and places are new to a model pre-trained on it.
 */
export function demoLatents(perClass: number, seed: number, variant = 0): { latents: Float32Array; labels: Int32Array } {
  const [C, H, W] = LATENT_SHAPE;
  const n = perClass * CLASSES;
  const latents = new Float32Array(n * C * H * W);
  const labels = new Int32Array(n);
  const r = Rng.from(seed, 0x1a7e);
  const gauss = (): number => Math.sqrt(-2 * Math.log(1 - r.float())) * Math.cos(2 * Math.PI * r.float());
  for (let i = 0; i < n; i++) {
    const k = i % CLASSES;
    labels[i] = k;
    const angle = (2 * Math.PI * (k + 0.5 * variant)) / CLASSES;
    const radius = variant ? 1.5 : 2.5;
    const width = variant ? 1.8 : 1.2;
    const cx = 3.5 + radius * Math.cos(angle) + r.uniform(-0.5, 0.5);
    const cy = 3.5 + radius * Math.sin(angle) + r.uniform(-0.5, 0.5);
    const amp = r.uniform(0.8, 1.2);
    for (let c = 0; c < C; c++) {
      const sign = !variant && ((k + c) * 7) % 3 === 0 ? -1 : 1; // a class-specific channel pattern
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const d2 = (x - cx) ** 2 + (y - cy) ** 2;
          latents[((i * C + c) * H + y) * W + x] = sign * amp * Math.exp(-d2 / (2 * width ** 2)) + 0.1 * gauss();
        }
      }
    }
  }
  return { latents, labels };
}

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'onelora-demo-latents-'));
  try {
    const { latents, labels } = demoLatents(50, 0);
    const file = path.join(work, 'blobs.safetensors');
    writeSafetensors(file, {
      latents: { dtype: 'F32', shape: [labels.length, ...LATENT_SHAPE], data: latents },
      labels: { dtype: 'I32', shape: [labels.length], data: labels },
    }, { num_classes: String(CLASSES) });
    const report = await prepare({ dataset: 'latents', input: file, out: path.join(repoRoot(), 'data', 'demo', 'latents-arrow'), valFraction: 0.2, seed: 0 });
    console.log(JSON.stringify(report.rows));
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) await main();

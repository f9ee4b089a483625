// A Fréchet distance for the tiny DiT demo's 32 × 32 images, where the FID Inception network
// (src/eval/inception.ts: 23.9 M weights, a 299 × 299 resize) would cost far more than the
// training it scores. The features come from a small convolutional network with FIXED seeded
// random weights (He-scaled, biases 0, no training): three 3 × 3 stride-2 convs with ReLU
// (3 → 16 → 32 → 16 channels), then an average pool to a 2 × 2 grid, 64 features that keep the
// coarse layout of an image (where its blob is) as well as its colours and edges. Random
// convolutional features are a known stand-in where no trained network fits (Naeem et al. 2020,
// "Reliable Fidelity and Diversity Metrics for Generative Models", use randomly initialised
// embeddings), but the figures are NOT comparable to published FIDs: they only compare runs of
// the demo with each other. Hand-written: no package ships such a network.
import { tf } from '../backend/tf.js';
import { conv2d, convWeightFromTorch } from '../nn/conv.js';
import { Rng } from '../nn/rng.js';
import { UserError } from '../errors.js';
import { gaussian } from '../models/diffusion.js';
import { featureStats, type FeatureStats } from './fid.js';

/** The weights' seed: part of the network's definition, so every run measures with the same features. */
const SEED = 1;
const CHANNELS = [3, 16, 32, 16] as const;
/** The features' dimension: the last conv's channels × a 2 × 2 grid. */
const TINY_FID_DIM = CHANNELS[3] * 4;
/** How summaries and reports name the network. */
export const TINY_FID_NETWORK = `random-conv-${TINY_FID_DIM} (seeded, untrained; not comparable to Inception FID)`;

export class TinyFidNet {
  private readonly weights: tf.Tensor4D[];

  /** `torchWeights`: the three convs' weights in torch's [out, in, 3, 3] layout instead of the fixed ones (the reference test). */
  constructor(torchWeights?: readonly Float32Array[]) {
    this.weights = CHANNELS.slice(1).map((cout, i) => {
      if (torchWeights) return convWeightFromTorch(torchWeights[i]!, [cout, CHANNELS[i]!, 3, 3]);
      const cin = CHANNELS[i]!;
      const fanIn = 9 * cin;
      // [kh, kw, cin, cout], N(0, 2 / fan_in): ReLU's variance-keeping scale (He et al. 2015).
      return tf.tensor4d(gaussian(Rng.named(SEED, `tiny-fid.conv${i}`), fanIn * cout, Math.sqrt(2 / fanIn)), [3, 3, cin, cout]);
    });
  }

  /** uint8 images [N, H, W, 3] (H and W multiples of 16) → features [N, 64]. */
  async features(pixels: Uint8Array, n: number, h: number, w: number): Promise<Float32Array> {
    if (h % 16 !== 0 || w % 16 !== 0) throw new UserError(`tiny FID: images are ${w}×${h}; its network needs sides that are multiples of 16`);
    const f = tf.tidy(() => {
      let x = tf.sub(tf.div(tf.tensor4d(pixels, [n, h, w, 3], 'float32'), 127.5), 1) as tf.Tensor4D; // [−1, 1] as the FID networks take them
      for (const k of this.weights) x = tf.relu(conv2d(x, k, { stride: 2, padding: [[0, 1], [0, 1]] }));
      const pooled = tf.avgPool(x, [h / 16, w / 16], [h / 16, w / 16], 'valid'); // [N, 2, 2, C]
      return tf.reshape(pooled, [n, TINY_FID_DIM]);
    });
    const out = (await f.data()) as Float32Array;
    f.dispose();
    return out;
  }

  async stats(pixels: Uint8Array, n: number, h: number, w: number): Promise<FeatureStats> {
    return featureStats(await this.features(pixels, n, h, w), n, TINY_FID_DIM);
  }

  dispose(): void {
    for (const k of this.weights) k.dispose();
  }
}


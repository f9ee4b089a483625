// Host-side encode and decode with the VAE (src/models/vae.ts): 8-bit images in, latents in the
// scaled space DiT trains on out (`(mean or a draw − shift) × scaling_factor`, [N, C, h, w] as
// the latent files hold them), and back. The batch is cut into slices of `slice` images so that
// only one slice's activations exist at a time (diffusers' `enable_slicing`).
import { tf } from '../backend/tf.js';
import { Rng } from '../nn/rng.js';
import { gaussian } from './diffusion.js';
import type { VaeModel } from './vae.js';

type T4 = tf.Tensor4D;

export type VaeSampleMode = 'mean' | 'sample';

export interface EncodeOptions {
  /** 'mean' (deterministic) or 'sample' (a seeded draw from the posterior). */
  readonly mode: VaeSampleMode;
  readonly seed: number;
  /** The index of the first image in its dataset: a draw depends on (seed, index) only, not on slicing. */
  readonly firstIndex?: number;
  readonly slice?: number;
}

/** uint8 HWC images [N, H, W, 3] (back to back) -> scaled latents [N, C, H/f, W/f] (back to back). */
export async function encodeImages(vae: VaeModel, pixels: Uint8Array, n: number, h: number, w: number, opts: EncodeOptions): Promise<Float32Array> {
  const c = vae.config;
  const f = vae.factor;
  const per = (h / f) * (w / f) * c.latentChannels;
  const out = new Float32Array(n * per);
  const slice = opts.slice ?? 1;
  for (let i = 0; i < n; i += slice) {
    const m = Math.min(slice, n - i);
    const x = tf.tidy(() => tf.sub(tf.div(tf.tensor4d(pixels.subarray(i * h * w * 3, (i + m) * h * w * 3), [m, h, w, 3], 'float32'), 127.5), 1) as T4); // [0, 255] -> [-1, 1]
    const { mean, logvar } = vae.encode(x);
    x.dispose();
    const z = tf.tidy(() => {
      let lat: tf.Tensor = mean;
      if (opts.mode === 'sample') {
        const eps = new Float32Array(mean.size);
        const each = mean.size / m;
        for (let j = 0; j < m; j++) eps.set(gaussian(Rng.named(opts.seed, `vae-sample:${(opts.firstIndex ?? 0) + i + j}`), each), j * each);
        lat = tf.add(mean, tf.mul(tf.exp(tf.mul(logvar, 0.5)), tf.tensor(eps, mean.shape))); // mean + σ·ε
      }
      return tf.transpose(tf.mul(tf.sub(lat, c.shiftFactor), c.scalingFactor), [0, 3, 1, 2]); // NHWC -> NCHW
    });
    mean.dispose();
    logvar.dispose();
    out.set(await z.data(), i * per);
    z.dispose();
  }
  return out;
}

/** Scaled latents [N, C, h, w] -> uint8 HWC images [N, f·h, f·w, 3], as torchvision's save_image(normalize, value_range=(-1, 1)). */
export async function decodeLatents(vae: VaeModel, latents: Float32Array, n: number, h: number, w: number, slice = 1): Promise<Uint8Array> {
  const c = vae.config;
  const f = vae.factor;
  const per = c.latentChannels * h * w;
  const pix = f * h * f * w * 3;
  const out = new Uint8Array(n * pix);
  for (let i = 0; i < n; i += slice) {
    const m = Math.min(slice, n - i);
    const z = tf.tidy(() => {
      const s = tf.tensor4d(latents.subarray(i * per, (i + m) * per), [m, c.latentChannels, h, w]);
      return tf.add(tf.div(tf.transpose(s, [0, 2, 3, 1]), c.scalingFactor), c.shiftFactor) as T4; // NCHW -> NHWC, unscaled
    });
    const y = vae.decode(z);
    z.dispose();
    const img = tf.tidy(() => tf.clipByValue(tf.floor(tf.add(tf.mul(tf.div(tf.add(tf.clipByValue(y, -1, 1), 1), 2), 255), 0.5)), 0, 255));
    y.dispose();
    const vals = await img.data();
    img.dispose();
    for (let k = 0; k < vals.length; k++) out[i * pix + k] = vals[k]!;
  }
  return out;
}

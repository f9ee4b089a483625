// `node --import tsx scripts/bench-vae.ts [--size 256] [--backend wasm]`: encode and decode time and
// peak tensor memory per image of the SD VAE's architecture (sd-vae-ft-ema's config, seeded random
// weights: the cost does not depend on the values). Prints one JSON line (wall and CPU seconds: on a
// shared machine the CPU time is the one to compare); docs/dit.md quotes it.
import { parseArgs } from 'node:util';
import { initBackend, tf } from '../src/backend/select.js';
import { parseVaeConfig, randomVae } from '../src/models/vae-load.js';

const { values } = parseArgs({ options: { size: { type: 'string', default: '256' }, backend: { type: 'string', default: 'wasm' } } });
const size = Number(values.size);
const info = await initBackend(values.backend);
const vae = randomVae(parseVaeConfig({
  block_out_channels: [128, 256, 512, 512], layers_per_block: 2, latent_channels: 4, norm_num_groups: 32, sample_size: 256,
  down_block_types: Array(4).fill('DownEncoderBlock2D'), up_block_types: Array(4).fill('UpDecoderBlock2D'), scaling_factor: 0.18215,
}, 'sd-vae config'), 1);
const x = tf.randomUniform([1, size, size, 3], -1, 1, 'float32', 1) as tf.Tensor4D;
const base = tf.memory().numBytes;
const cpu = (): number => process.cpuUsage().user / 1e6;
let c0 = cpu();
let t = performance.now();
let mean: tf.Tensor4D | null = null;
const enc = await tf.profile(async () => {
  const r = vae.encode(x);
  await r.mean.data();
  r.logvar.dispose();
  mean = r.mean;
  return [];
});
const encodeS = (performance.now() - t) / 1000;
const encodeCpu = cpu() - c0;
c0 = cpu();
t = performance.now();
const dec = await tf.profile(async () => {
  const y = vae.decode(mean!);
  await y.data();
  y.dispose();
  return [];
});
const decodeS = (performance.now() - t) / 1000;
const decodeCpu = cpu() - c0;
console.log(JSON.stringify({
  backend: info.name, size, params: vae.parameterCount(), weights_mb: +(base / 2 ** 20).toFixed(1),
  encode_s: +encodeS.toFixed(1), encode_cpu_s: +encodeCpu.toFixed(1), encode_peak_mb: +((enc.peakBytes - base) / 2 ** 20).toFixed(1),
  decode_s: +decodeS.toFixed(1), decode_cpu_s: +decodeCpu.toFixed(1), decode_peak_mb: +((dec.peakBytes - base) / 2 ** 20).toFixed(1), rss_mb: Math.round(process.memoryUsage().rss / 2 ** 20),
}));

// `node --import tsx scripts/make-demo-vae.ts`: the tiny-dit-demo's VAE, deterministically, in
// the diffusers AutoencoderKL layout (models/demo-vae/config.json + diffusion_pytorch_model.safetensors,
// F16). A seeded random network (src/models/vae-load.ts randomVaeTensor) of the SD VAE's
// architecture, shrunk: widths 16-32-32, one resnet per level, 4 latent channels and a factor of 4,
// so the demo's 4×8×8 latents decode to 32×32 RGB images. Untrained: it maps latents to pictures
// deterministically, which is what the demo's grid and its FID before and after fine-tuning need
// (the held-out images are the decoded held-out latents); it is no image model.
import fs from 'node:fs';
import path from 'node:path';
import { writeSafetensors, type TensorToWrite } from '../src/checkpoint/safetensors.js';
import { repoRoot } from '../src/config/index.js';
import { parseVaeConfig, randomVaeTensor, vaeTensorShapes } from '../src/models/vae-load.js';

const SEED = 4242;
const CONFIG = {
  _class_name: 'AutoencoderKL', in_channels: 3, out_channels: 3,
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
  block_out_channels: [16, 32, 32], layers_per_block: 1, act_fn: 'silu', latent_channels: 4,
  norm_num_groups: 8, sample_size: 32, scaling_factor: 0.18215,
};

const dir = path.join(repoRoot(), 'models', 'demo-vae');
fs.mkdirSync(dir, { recursive: true });
fs.writeFileSync(path.join(dir, 'config.json'), `${JSON.stringify(CONFIG, null, 2)}\n`);
const tensors: Record<string, TensorToWrite> = {};
for (const [name, shape] of vaeTensorShapes(parseVaeConfig(CONFIG, 'demo-vae config'))) {
  tensors[name] = { dtype: 'F16', shape: [...shape], data: randomVaeTensor(name, shape, SEED) };
}
writeSafetensors(path.join(dir, 'diffusion_pytorch_model.safetensors'), tensors, { format: 'pt' });
console.log(`wrote ${Object.keys(tensors).length} tensors to ${dir}`);

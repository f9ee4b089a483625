// Writing a DiT in diffusers' layout (`onelora merge --layout diffusers`): `DIR/transformer/config.json`
// + `diffusion_pytorch_model.safetensors` with DiTTransformer2DModel's names, which diffusers'
// DiTPipeline (and onelora, dit-load.ts) reads: qkv split into attn1.to_q/to_k/to_v, the timestep
// and class embedders repeated in every block (`transformer_blocks.N.norm1.emb.*`), the final layer
// as proj_out_1/proj_out_2, no pos_embed (diffusers recomputes it).
// diffusers computes the timestep frequencies with shift 1 where facebookresearch/DiT uses 0 (see
// DitConfig.timestepShift): a model trained in one convention gives slightly different outputs
// in the other, as diffusers' own conversion of the DiT release does.
import fs from 'node:fs';
import path from 'node:path';
import { writeSafetensorsShards, type TensorToWrite } from '../checkpoint/safetensors.js';
import { diffusersNames } from './dit-load.js';
import type { DitModel } from './dit.js';
import type { SaveOptions } from './hf.js';

export async function saveDitDiffusers(model: DitModel, dir: string, opts: SaveOptions = {}): Promise<void> {
  const dtype = opts.dtype ?? 'F32';
  const c = model.config;
  const out = path.join(dir, 'transformer');
  fs.mkdirSync(out, { recursive: true });
  const tensors: [string, TensorToWrite][] = [];
  for (const [name, v] of model.parameters()) {
    const isLinearWeight = v.rank === 2 && name.endsWith('.weight') && !name.startsWith('y_embedder');
    const t = isLinearWeight ? v.transpose() : v; // kernel [in, out] -> torch [out, in]
    const data = Float32Array.from(await t.data());
    if (t !== v) t.dispose();
    const shape = name === 'x_embedder.proj.weight' ? [c.hidden, c.inChannels, c.patchSize, c.patchSize] : isLinearWeight ? [v.shape[1]!, v.shape[0]!] : [...v.shape];
    const names = diffusersNames(name, c.depth);
    if (name.startsWith('t_embedder') || name.startsWith('y_embedder')) {
      for (const n of names) tensors.push([n, { dtype, shape, data }]); // one copy per block, as diffusers holds them
      continue;
    }
    // Fused rows (qkv) split back into one tensor per name, in order.
    const rows = shape[0]! / names.length;
    const per = data.length / names.length;
    names.forEach((n, i) => tensors.push([n, { dtype, shape: [rows, ...shape.slice(1)], data: data.subarray(i * per, (i + 1) * per) }]));
  }
  tensors.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  writeSafetensorsShards(out, 'diffusion_pytorch_model', tensors, opts.maxShardBytes ?? Infinity, { format: 'pt' });
  const config = {
    _class_name: 'DiTTransformer2DModel', activation_fn: 'gelu-approximate', attention_bias: true, attention_head_dim: c.hidden / c.heads,
    in_channels: c.inChannels, norm_elementwise_affine: false, norm_eps: c.mlpNormEps, norm_type: 'ada_norm_zero',
    num_attention_heads: c.heads, num_embeds_ada_norm: c.numClasses, num_layers: c.depth, out_channels: c.learnSigma ? 2 * c.inChannels : c.inChannels,
    patch_size: c.patchSize, sample_size: c.inputSize,
  };
  fs.writeFileSync(path.join(out, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
}

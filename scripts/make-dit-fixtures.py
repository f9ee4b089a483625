#!/usr/bin/python3
"""Golden fixtures for onelora's DiT (test/models/dit.test.ts, test/models/diffusion.test.ts).

An independent reference written from the DiT paper (Peebles & Xie, 2023) and the equations of
facebookresearch/DiT models.py / diffusion/gaussian_diffusion.py, in plain torch (no diffusers):
  c = TimestepMLP(sincos(t)) + table[y]
  block:  shift1, scale1, gate1, shift2, scale2, gate2 = Linear(SiLU(c))
          x += gate1 * Attn(LN(x) * (1 + scale1) + shift1)
          x += gate2 * MLP(LN(x) * (1 + scale2) + shift2)           (MLP = fc2(gelu_tanh(fc1)))
  final:  shift, scale = Linear(SiLU(c)); out = Linear(LN(x) * (1 + scale) + shift); unpatchify
Everything is computed in float64. Weights are multiples of 1/64 in [-1/8, 1/8], exactly
representable in float16, so one golden output holds for the F32-stored and the F16-stored files;
the checkpoints are gzipped (17 distinct values compress well) to keep the fixtures small.

Writes test/fixtures/dit/:
  orig-f32.safetensors.gz       facebookresearch key layout (fused qkv, pos_embed), F32
  diffusers-f16/config.json + diffusion_pytorch_model.safetensors.gz
                                diffusers DiTTransformer2DModel layout (to_q/to_k/to_v, embedders
                                repeated in every block), F16
  golden.safetensors            inputs, outputs of both variants, and a VLB/MSE case
Run: /usr/bin/python3 scripts/make-dit-fixtures.py
"""
import gzip
import json
import math
import os
import struct

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'dit')

INPUT, PATCH, IN_CH, HIDDEN, DEPTH, HEADS, CLASSES = 8, 2, 4, 64, 2, 4, 10
OUT_CH = 2 * IN_CH  # learn_sigma
MLP = 4 * HIDDEN
G = INPUT // PATCH
TOKENS = G * G

gen = torch.Generator().manual_seed(1234)


def w(*shape):
    return torch.randint(-8, 9, shape, generator=gen).double() / 64.0


P = {
    'x_embedder.proj.weight': w(HIDDEN, IN_CH, PATCH, PATCH),
    'x_embedder.proj.bias': w(HIDDEN),
    't_embedder.mlp.0.weight': w(HIDDEN, 256),
    't_embedder.mlp.0.bias': w(HIDDEN),
    't_embedder.mlp.2.weight': w(HIDDEN, HIDDEN),
    't_embedder.mlp.2.bias': w(HIDDEN),
    'y_embedder.embedding_table.weight': w(CLASSES + 1, HIDDEN) * 8,
    'final_layer.adaLN_modulation.1.weight': w(2 * HIDDEN, HIDDEN),
    'final_layer.adaLN_modulation.1.bias': w(2 * HIDDEN),
    'final_layer.linear.weight': w(PATCH * PATCH * OUT_CH, HIDDEN),
    'final_layer.linear.bias': w(PATCH * PATCH * OUT_CH),
}
for i in range(DEPTH):
    b = f'blocks.{i}.'
    P[b + 'attn.qkv.weight'] = w(3 * HIDDEN, HIDDEN)
    P[b + 'attn.qkv.bias'] = w(3 * HIDDEN)
    P[b + 'attn.proj.weight'] = w(HIDDEN, HIDDEN)
    P[b + 'attn.proj.bias'] = w(HIDDEN)
    P[b + 'mlp.fc1.weight'] = w(MLP, HIDDEN)
    P[b + 'mlp.fc1.bias'] = w(MLP)
    P[b + 'mlp.fc2.weight'] = w(HIDDEN, MLP)
    P[b + 'mlp.fc2.bias'] = w(HIDDEN)
    P[b + 'adaLN_modulation.1.weight'] = w(6 * HIDDEN, HIDDEN)
    P[b + 'adaLN_modulation.1.bias'] = w(6 * HIDDEN)


def pos_embed():
    """2-D sin-cos table: the first half of the channels encodes the column, the second the row."""
    def one_d(dim, pos):
        omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
        out = np.outer(pos, omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)
    rows, cols = np.meshgrid(np.arange(G), np.arange(G), indexing='ij')
    emb = np.concatenate([one_d(HIDDEN // 2, cols.reshape(-1)), one_d(HIDDEN // 2, rows.reshape(-1))], axis=1)
    return torch.from_numpy(emb)  # [T, D], token index = row * G + col


def t_freq(t, shift):
    half = 128
    freqs = torch.exp(-math.log(10000) * torch.arange(half).double() / (half - shift))
    args = t.double()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def lin(x, name):
    return x @ P[name + '.weight'].T + P[name + '.bias']


def ln(x, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps)


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def attention(x, name):
    B, T, D = x.shape
    hd = D // HEADS
    q, k, v = lin(x, name + '.qkv').split(D, dim=-1)
    q, k, v = (z.reshape(B, T, HEADS, hd).permute(0, 2, 1, 3) for z in (q, k, v))
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
    return lin((a @ v).permute(0, 2, 1, 3).reshape(B, T, D), name + '.proj')


def forward(x, t, y, shift, eps2):
    B = x.shape[0]
    # patch embedding as the convolution it is (stride = kernel = patch)
    h = torch.nn.functional.conv2d(x, P['x_embedder.proj.weight'], P['x_embedder.proj.bias'], stride=PATCH)
    h = h.flatten(2).transpose(1, 2) + pos_embed()[None]
    te = lin(torch.nn.functional.silu(lin(t_freq(t, shift), 't_embedder.mlp.0')), 't_embedder.mlp.2')
    c = te + P['y_embedder.embedding_table.weight'][y]
    sc = torch.nn.functional.silu(c)
    for i in range(DEPTH):
        b = f'blocks.{i}.'
        m = lin(sc, b + 'adaLN_modulation.1')[:, None, :].chunk(6, dim=-1)
        h = h + m[2] * attention(ln(h, 1e-6) * (1 + m[1]) + m[0], b + 'attn')
        z = ln(h, eps2) * (1 + m[4]) + m[3]
        h = h + m[5] * lin(gelu_tanh(lin(z, b + 'mlp.fc1')), b + 'mlp.fc2')
    shift_f, scale_f = lin(sc, 'final_layer.adaLN_modulation.1')[:, None, :].chunk(2, dim=-1)
    o = lin(ln(h, 1e-6) * (1 + scale_f) + shift_f, 'final_layer.linear')  # [B, T, p*p*C]
    o = o.reshape(B, G, G, PATCH, PATCH, OUT_CH).permute(0, 5, 1, 3, 2, 4)
    return o.reshape(B, OUT_CH, INPUT, INPUT)


# --- the DiT training objective on a tiny case (gaussian_diffusion.py, LEARNED_RANGE + MSE) ---
def schedule():
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    acp = np.cumprod(1 - betas)
    acp_prev = np.append(1.0, acp[:-1])
    post_var = betas * (1 - acp_prev) / (1 - acp)
    return betas, acp, acp_prev, post_var


def vlb_case(x0, noise, t, out):
    betas, acp, acp_prev, post_var = schedule()
    x0, noise, out = x0.numpy(), noise.numpy(), out.numpy()
    res_mse, res_vb = [], []
    for i, ti in enumerate(t.tolist()):
        a = acp[ti]
        xt = math.sqrt(a) * x0[i] + math.sqrt(1 - a) * noise[i]
        eps, v = out[i, :IN_CH], out[i, IN_CH:]
        c1 = betas[ti] * math.sqrt(acp_prev[ti]) / (1 - a)
        c2 = (1 - acp_prev[ti]) * math.sqrt(1 - betas[ti]) / (1 - a)
        true_mean = c1 * x0[i] + c2 * xt
        true_logvar = math.log(post_var[1] if ti == 0 else post_var[ti])
        min_log, max_log = true_logvar, math.log(betas[ti])
        frac = (v + 1) / 2
        logvar = frac * max_log + (1 - frac) * min_log
        x0_pred = xt / math.sqrt(a) - math.sqrt(1 / a - 1) * eps
        mean = c1 * x0_pred + c2 * xt
        if ti == 0:
            def cdf(z):
                return 0.5 * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))
            inv = np.exp(-0.5 * logvar)
            cp = cdf(inv * (x0[i] - mean + 1 / 255))
            cm = cdf(inv * (x0[i] - mean - 1 / 255))
            lp = np.where(x0[i] < -0.999, np.log(np.maximum(cp, 1e-12)),
                          np.where(x0[i] > 0.999, np.log(np.maximum(1 - cm, 1e-12)), np.log(np.maximum(cp - cm, 1e-12))))
            vb = -lp.mean() / math.log(2)
        else:
            kl = 0.5 * (-1 + logvar - true_logvar + np.exp(true_logvar - logvar) + (true_mean - mean) ** 2 * np.exp(-logvar))
            vb = kl.mean() / math.log(2)
        res_vb.append(vb)
        res_mse.append(((noise[i] - eps) ** 2).mean())
    return torch.tensor(res_mse), torch.tensor(res_vb)


def write_safetensors(path, tensors, dtype):
    codes = {'F32': (np.float32, 'F32'), 'F16': (np.float16, 'F16')}
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        np_dtype, code = codes[dtype] if t.is_floating_point() else (np.int32, 'I32')
        data = t.numpy().astype(np_dtype).tobytes()
        header[name] = {'dtype': code, 'shape': list(t.shape), 'data_offsets': [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    raw = struct.pack('<Q', len(h)) + h + b''.join(blobs)
    if path.endswith('.gz'):
        with gzip.GzipFile(path, 'wb', compresslevel=9, mtime=0) as f:
            f.write(raw)
    else:
        with open(path, 'wb') as f:
            f.write(raw)


def diffusers_layout():
    d = {'pos_embed.proj.weight': P['x_embedder.proj.weight'], 'pos_embed.proj.bias': P['x_embedder.proj.bias'],
         'proj_out_1.weight': P['final_layer.adaLN_modulation.1.weight'],
         'proj_out_1.bias': P['final_layer.adaLN_modulation.1.bias'],
         'proj_out_2.weight': P['final_layer.linear.weight'], 'proj_out_2.bias': P['final_layer.linear.bias']}
    for i in range(DEPTH):
        s, b = f'blocks.{i}.', f'transformer_blocks.{i}.'
        emb = b + 'norm1.emb.'
        for j, k in ((1, 0), (2, 2)):
            for kind in ('weight', 'bias'):
                d[f'{emb}timestep_embedder.linear_{j}.{kind}'] = P[f't_embedder.mlp.{k}.{kind}']
        d[emb + 'class_embedder.embedding_table.weight'] = P['y_embedder.embedding_table.weight']
        for kind in ('weight', 'bias'):
            d[f'{b}norm1.linear.{kind}'] = P[f'{s}adaLN_modulation.1.{kind}']
            for name, part in zip(('to_q', 'to_k', 'to_v'), P[f'{s}attn.qkv.{kind}'].chunk(3, dim=0)):
                d[f'{b}attn1.{name}.{kind}'] = part
            d[f'{b}attn1.to_out.0.{kind}'] = P[f'{s}attn.proj.{kind}']
            d[f'{b}ff.net.0.proj.{kind}'] = P[f'{s}mlp.fc1.{kind}']
            d[f'{b}ff.net.2.{kind}'] = P[f'{s}mlp.fc2.{kind}']
    return d


def main():
    os.makedirs(os.path.join(OUT, 'diffusers-f16'), exist_ok=True)
    orig = dict(P)
    orig['pos_embed'] = pos_embed()[None]
    write_safetensors(os.path.join(OUT, 'orig-f32.safetensors.gz'), orig, 'F32')
    write_safetensors(os.path.join(OUT, 'diffusers-f16', 'diffusion_pytorch_model.safetensors.gz'), diffusers_layout(), 'F16')
    cfg = {'_class_name': 'DiTTransformer2DModel', 'activation_fn': 'gelu-approximate', 'attention_bias': True,
           'attention_head_dim': HIDDEN // HEADS, 'in_channels': IN_CH, 'norm_elementwise_affine': False,
           'norm_eps': 1e-5, 'norm_type': 'ada_norm_zero', 'num_attention_heads': HEADS, 'num_embeds_ada_norm': CLASSES,
           'num_layers': DEPTH, 'out_channels': OUT_CH, 'patch_size': PATCH, 'sample_size': INPUT}
    with open(os.path.join(OUT, 'diffusers-f16', 'config.json'), 'w') as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write('\n')

    x = torch.randn(3, IN_CH, INPUT, INPUT, generator=gen)
    t = torch.tensor([0, 417, 999])
    y = torch.tensor([3, 7, CLASSES])  # the last row is the classifier-free-guidance null class
    out_orig = forward(x, t, y, shift=0, eps2=1e-6)
    out_diff = forward(x, t, y, shift=1, eps2=1e-5)
    noise = torch.randn(3, IN_CH, INPUT, INPUT, generator=gen)
    vout = torch.randn(3, OUT_CH, INPUT, INPUT, generator=gen).clamp(-1, 1)
    x0 = x.clamp(-1.5, 1.5)
    mse, vb = vlb_case(x0, noise, t, vout)
    g = {'x': x, 't': t.int(), 'y': y.int(), 'out_orig': out_orig, 'out_diffusers': out_diff,
         'vlb_x0': x0, 'vlb_noise': noise, 'vlb_out': vout, 'vlb_mse': mse, 'vlb_vb': vb}
    write_safetensors(os.path.join(OUT, 'golden.safetensors'), g, 'F32')
    print('out_orig |max|', out_orig.abs().max().item(), 'vb', vb.tolist(), 'mse', mse.tolist())


if __name__ == '__main__':
    main()

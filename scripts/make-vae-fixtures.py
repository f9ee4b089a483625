#!/usr/bin/python3
"""Golden fixtures for onelora's AutoencoderKL (test/models/vae.test.ts).

An independent float64 reference of the Stable Diffusion VAE as diffusers' AutoencoderKL defines it
(Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion Models", 2022; diffusers
models/autoencoders/vae.py Encoder/Decoder, resnet.py ResnetBlock2D, attention_processor.py), in
plain torch (Debian has no diffusers):
  encoder: conv_in; per level: resnets (GroupNorm-SiLU-conv3 twice, 1x1 shortcut when the width
           changes) then, except the last level, pad (0,1,0,1) + conv3 stride 2; mid: resnet,
           single-head self-attention over H*W tokens with a GroupNorm in front and a residual,
           resnet; GroupNorm-SiLU-conv_out to 2*latent channels; quant_conv (1x1)
  posterior: mean, logvar = chunk(2); logvar clamped to [-30, 20]
  decoder: post_quant_conv (1x1); conv_in; mid; per level (widths reversed): layers+1 resnets then,
           except the last, nearest x2 upsample + conv3; GroupNorm-SiLU-conv_out
Weights are float64 values rounded to bfloat16 (and so exact in float16 too), so one golden output
holds for the F32 and F16 files.

Writes test/fixtures/vae/:
  legacy-f32/   config.json + diffusion_pytorch_model.safetensors, mid-block attention under the
                old names (query/key/value/proj_attn, 1x1-conv shaped [C, C, 1, 1] as older files hold)
  current-f16/  the same weights under to_q/to_k/to_v/to_out.0, F16
  golden.safetensors  images [N, 3, H, W], mean/logvar [N, 2*... split], decoded [N, 3, H, W]
Run: /usr/bin/python3 scripts/make-vae-fixtures.py
"""
import importlib.util
import json
import os
import shutil

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'vae')
_spec = importlib.util.spec_from_file_location('make_fixtures', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'make-fixtures.py'))
_mf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mf)
write_safetensors = _mf.write_safetensors

CONFIG = {
    '_class_name': 'AutoencoderKL',
    'in_channels': 3,
    'out_channels': 3,
    'down_block_types': ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
    'up_block_types': ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
    'block_out_channels': [8, 16],
    'layers_per_block': 1,
    'act_fn': 'silu',
    'latent_channels': 4,
    'norm_num_groups': 4,
    'sample_size': 16,
    'scaling_factor': 0.18215,
}
EPS = 1e-6
gen = torch.Generator().manual_seed(17)


def bf16_round(t):
    """Round to the nearest bfloat16 and drop magnitudes below 2^-10 (then exact in float16 as well)."""
    t = t.to(torch.bfloat16).double()
    return torch.where(t.abs() < 2 ** -10, torch.zeros_like(t), t)


P = {}


def conv(name, cin, cout, k):
    P[f'{name}.weight'] = bf16_round(torch.randn(cout, cin, k, k, generator=gen) / (cin * k * k) ** 0.5)
    P[f'{name}.bias'] = bf16_round(0.1 * torch.randn(cout, generator=gen))


def norm(name, c):
    P[f'{name}.weight'] = bf16_round(1 + 0.2 * torch.randn(c, generator=gen))
    P[f'{name}.bias'] = bf16_round(0.1 * torch.randn(c, generator=gen))


def linear(name, cin, cout):
    P[f'{name}.weight'] = bf16_round(torch.randn(cout, cin, generator=gen) / cin ** 0.5)
    P[f'{name}.bias'] = bf16_round(0.1 * torch.randn(cout, generator=gen))


def resnet_params(name, cin, cout):
    norm(f'{name}.norm1', cin)
    conv(f'{name}.conv1', cin, cout, 3)
    norm(f'{name}.norm2', cout)
    conv(f'{name}.conv2', cout, cout, 3)
    if cin != cout:
        conv(f'{name}.conv_shortcut', cin, cout, 1)


def mid_params(name, c):
    resnet_params(f'{name}.resnets.0', c, c)
    norm(f'{name}.attentions.0.group_norm', c)
    for proj in ('to_q', 'to_k', 'to_v', 'to_out.0'):
        linear(f'{name}.attentions.0.{proj}', c, c)
    resnet_params(f'{name}.resnets.1', c, c)


def build():
    boc, L, lat = CONFIG['block_out_channels'], CONFIG['layers_per_block'], CONFIG['latent_channels']
    conv('encoder.conv_in', 3, boc[0], 3)
    prev = boc[0]
    for i, c in enumerate(boc):
        for j in range(L):
            resnet_params(f'encoder.down_blocks.{i}.resnets.{j}', prev if j == 0 else c, c)
        prev = c
        if i < len(boc) - 1:
            conv(f'encoder.down_blocks.{i}.downsamplers.0.conv', c, c, 3)
    mid_params('encoder.mid_block', boc[-1])
    norm('encoder.conv_norm_out', boc[-1])
    conv('encoder.conv_out', boc[-1], 2 * lat, 3)
    conv('quant_conv', 2 * lat, 2 * lat, 1)
    conv('post_quant_conv', lat, lat, 1)
    rev = list(reversed(boc))
    conv('decoder.conv_in', lat, rev[0], 3)
    mid_params('decoder.mid_block', rev[0])
    prev = rev[0]
    for i, c in enumerate(rev):
        for j in range(L + 1):
            resnet_params(f'decoder.up_blocks.{i}.resnets.{j}', prev if j == 0 else c, c)
        prev = c
        if i < len(rev) - 1:
            conv(f'decoder.up_blocks.{i}.upsamplers.0.conv', c, c, 3)
    norm('decoder.conv_norm_out', boc[0])
    conv('decoder.conv_out', boc[0], 3, 3)


def gn(x, name):
    return F.group_norm(x, CONFIG['norm_num_groups'], P[f'{name}.weight'], P[f'{name}.bias'], EPS)


def cv(x, name, stride=1, padding=None):
    w = P[f'{name}.weight']
    pad = w.shape[-1] // 2 if padding is None else padding
    return F.conv2d(x, w, P[f'{name}.bias'], stride=stride, padding=pad)


def resnet(x, name):
    h = cv(F.silu(gn(x, f'{name}.norm1')), f'{name}.conv1')
    h = cv(F.silu(gn(h, f'{name}.norm2')), f'{name}.conv2')
    if f'{name}.conv_shortcut.weight' in P:
        x = cv(x, f'{name}.conv_shortcut')
    return x + h


def attention(x, name):
    b, c, h, w = x.shape
    t = gn(x, f'{name}.group_norm').reshape(b, c, h * w).transpose(1, 2)  # [B, HW, C]
    q = F.linear(t, P[f'{name}.to_q.weight'], P[f'{name}.to_q.bias'])
    k = F.linear(t, P[f'{name}.to_k.weight'], P[f'{name}.to_k.bias'])
    v = F.linear(t, P[f'{name}.to_v.weight'], P[f'{name}.to_v.bias'])
    a = torch.softmax(q @ k.transpose(1, 2) / c ** 0.5, dim=-1) @ v  # one head of width C
    o = F.linear(a, P[f'{name}.to_out.0.weight'], P[f'{name}.to_out.0.bias'])
    return x + o.transpose(1, 2).reshape(b, c, h, w)


def mid(x, name):
    return resnet(attention(resnet(x, f'{name}.resnets.0'), f'{name}.attentions.0'), f'{name}.resnets.1')


def encode(x):
    boc, L = CONFIG['block_out_channels'], CONFIG['layers_per_block']
    h = cv(x, 'encoder.conv_in')
    for i in range(len(boc)):
        for j in range(L):
            h = resnet(h, f'encoder.down_blocks.{i}.resnets.{j}')
        if i < len(boc) - 1:
            h = cv(F.pad(h, (0, 1, 0, 1)), f'encoder.down_blocks.{i}.downsamplers.0.conv', stride=2, padding=0)
    h = mid(h, 'encoder.mid_block')
    h = cv(F.silu(gn(h, 'encoder.conv_norm_out')), 'encoder.conv_out')
    moments = cv(h, 'quant_conv')
    mean, logvar = moments.chunk(2, dim=1)
    return mean, logvar.clamp(-30.0, 20.0)


def decode(z):
    boc, L = CONFIG['block_out_channels'], CONFIG['layers_per_block']
    h = cv(cv(z, 'post_quant_conv'), 'decoder.conv_in')
    h = mid(h, 'decoder.mid_block')
    for i in range(len(boc)):
        for j in range(L + 1):
            h = resnet(h, f'decoder.up_blocks.{i}.resnets.{j}')
        if i < len(boc) - 1:
            h = cv(F.interpolate(h, scale_factor=2.0, mode='nearest'), f'decoder.up_blocks.{i}.upsamplers.0.conv')
    return cv(F.silu(gn(h, 'decoder.conv_norm_out')), 'decoder.conv_out')


def legacy_names(p):
    """The mid-block attention as older diffusers files store it: query/key/value/proj_attn, 1x1-conv shaped."""
    ren = {'to_q': 'query', 'to_k': 'key', 'to_v': 'value', 'to_out.0': 'proj_attn'}
    out = {}
    for k, v in p.items():
        for new, old in ren.items():
            tag = f'.attentions.0.{new}.'
            if tag in k:
                k = k.replace(tag, f'.attentions.0.{old}.')
                if k.endswith('.weight'):
                    v = v.reshape(*v.shape, 1, 1)
        out[k] = v
    return out


def save(name, tensors, dtype):
    d = os.path.join(ROOT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, 'config.json'), 'w') as f:
        json.dump(CONFIG, f, indent=2)
    write_safetensors(os.path.join(d, 'diffusion_pytorch_model.safetensors'), tensors, dtype)


def main():
    os.makedirs(ROOT, exist_ok=True)
    build()
    save('legacy-f32', legacy_names(P), 'F32')
    save('current-f16', P, 'F16')
    n, s = 2, CONFIG['sample_size']
    # Images as 8-bit pixels would hold them, scaled to [-1, 1] (x / 127.5 - 1).
    pixels = torch.randint(0, 256, (n, 3, s, s), generator=gen).double()
    images = pixels / 127.5 - 1
    mean, logvar = encode(images)
    # Decode a latent that is not the encoder's mean, so a decoder bug cannot hide behind it.
    z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=gen)
    decoded = decode(z)
    write_safetensors(os.path.join(ROOT, 'golden.safetensors'), {
        'pixels': pixels, 'mean': mean, 'logvar': logvar, 'z': z, 'decoded': decoded,
    })
    print('mean', tuple(mean.shape), 'decoded', tuple(decoded.shape), 'logvar range', logvar.min().item(), logvar.max().item())


if __name__ == '__main__':
    main()

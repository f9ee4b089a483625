#!/usr/bin/python3
"""Golden fixtures for test/models/depth-anything.test.ts: one tiny random Depth Anything in both key
layouts (the original release's and transformers'), its `.pth` twin, and the depth maps of an
independent float64 reference forward; plus torch's F.interpolate on small inputs for
test/nn/resize.test.ts.

Run with Debian's torch:  /usr/bin/python3 scripts/make-depth-fixtures.py

The reference is written from the papers (DINOv2: pre-LN ViT blocks with LayerScale; DPT:
reassemble, residual conv units, fusion, head) and the published module structure of both code
bases, in plain torch (no transformers here). It shares no code with the TypeScript model.
"""
import importlib.util
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

_spec = importlib.util.spec_from_file_location('make_fixtures', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'make-fixtures.py'))
_mf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mf)
OUT = _mf.OUT
write_safetensors = _mf.write_safetensors

C = dict(hidden=32, heads=2, layers=4, mlp=128, patch=14, image=56, out=[0, 1, 2, 3], neck=[8, 16, 32, 32], fusion=16, head_hidden=8)
EPS = 1e-6


def tensors(g):
    """Original-layout state dict (float32 values, as the files hold them)."""
    d, p = C['hidden'], C['patch']
    W = {}

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).float()

    def conv(name, o, i, k, bias=True, scale=None):
        W[f'{name}.weight'] = r(o, i, k, k, scale=scale if scale is not None else 1 / math.sqrt(i * k * k))
        if bias:
            W[f'{name}.bias'] = r(o, scale=0.1)

    grid = C['image'] // p
    W['pretrained.cls_token'] = r(1, 1, d, scale=0.5)
    W['pretrained.mask_token'] = r(1, d, scale=0.5)
    W['pretrained.pos_embed'] = r(1, grid * grid + 1, d, scale=0.5)
    conv('pretrained.patch_embed.proj', d, 3, p)
    for i in range(C['layers']):
        b = f'pretrained.blocks.{i}'
        for n in ('norm1', 'norm2'):
            W[f'{b}.{n}.weight'] = 1 + r(d, scale=0.1)
            W[f'{b}.{n}.bias'] = r(d, scale=0.1)
        for n, o, k in (('attn.qkv', 3 * d, d), ('attn.proj', d, d), ('mlp.fc1', C['mlp'], d), ('mlp.fc2', d, C['mlp'])):
            W[f'{b}.{n}.weight'] = r(o, k, scale=1 / math.sqrt(k))
            W[f'{b}.{n}.bias'] = r(o, scale=0.1)
        W[f'{b}.ls1.gamma'] = 0.5 + r(d, scale=0.2)
        W[f'{b}.ls2.gamma'] = 0.5 + r(d, scale=0.2)
    W['pretrained.norm.weight'] = 1 + r(d, scale=0.1)
    W['pretrained.norm.bias'] = r(d, scale=0.1)
    f = C['fusion']
    for i, ch in enumerate(C['neck']):
        conv(f'depth_head.projects.{i}', ch, d, 1)
    # ConvTranspose2d weights are [in, out, k, k]
    W['depth_head.resize_layers.0.weight'] = r(C['neck'][0], C['neck'][0], 4, 4, scale=1 / math.sqrt(C['neck'][0]))
    W['depth_head.resize_layers.0.bias'] = r(C['neck'][0], scale=0.1)
    W['depth_head.resize_layers.1.weight'] = r(C['neck'][1], C['neck'][1], 2, 2, scale=1 / math.sqrt(C['neck'][1]))
    W['depth_head.resize_layers.1.bias'] = r(C['neck'][1], scale=0.1)
    conv('depth_head.resize_layers.3', C['neck'][3], C['neck'][3], 3)
    for i, ch in enumerate(C['neck']):
        conv(f'depth_head.scratch.layer{i + 1}_rn', f, ch, 3, bias=False)
    for j in range(1, 5):
        s = f'depth_head.scratch.refinenet{j}'
        for u in ('resConfUnit1', 'resConfUnit2'):
            conv(f'{s}.{u}.conv1', f, f, 3)
            conv(f'{s}.{u}.conv2', f, f, 3)
        conv(f'{s}.out_conv', f, f, 1)
    conv('depth_head.scratch.output_conv1', f // 2, f, 3)
    conv('depth_head.scratch.output_conv2.0', C['head_hidden'], f // 2, 3)
    conv('depth_head.scratch.output_conv2.2', 1, C['head_hidden'], 1)
    W['depth_head.scratch.output_conv2.2.bias'] = torch.tensor([0.5])  # keeps the relative ReLU output mostly positive
    return W


def to_hf(W):
    """The same weights under transformers' DepthAnythingForDepthEstimation names (q, k, v split)."""
    H = {}
    d = C['hidden']
    H['backbone.embeddings.cls_token'] = W['pretrained.cls_token']
    H['backbone.embeddings.mask_token'] = W['pretrained.mask_token']
    H['backbone.embeddings.position_embeddings'] = W['pretrained.pos_embed']
    for k in ('weight', 'bias'):
        H[f'backbone.embeddings.patch_embeddings.projection.{k}'] = W[f'pretrained.patch_embed.proj.{k}']
        H[f'backbone.layernorm.{k}'] = W[f'pretrained.norm.{k}']
    for i in range(C['layers']):
        b, h = f'pretrained.blocks.{i}', f'backbone.encoder.layer.{i}'
        for k in ('weight', 'bias'):
            q, kk, v = W[f'{b}.attn.qkv.{k}'].split(d, 0)
            H[f'{h}.attention.attention.query.{k}'], H[f'{h}.attention.attention.key.{k}'], H[f'{h}.attention.attention.value.{k}'] = q, kk, v
            H[f'{h}.attention.output.dense.{k}'] = W[f'{b}.attn.proj.{k}']
            for n in ('norm1', 'norm2', 'mlp.fc1', 'mlp.fc2'):
                H[f'{h}.{n}.{k}'] = W[f'{b}.{n}.{k}']
        H[f'{h}.layer_scale1.lambda1'] = W[f'{b}.ls1.gamma']
        H[f'{h}.layer_scale2.lambda1'] = W[f'{b}.ls2.gamma']
    for i in range(4):
        for k in ('weight', 'bias'):
            H[f'neck.reassemble_stage.layers.{i}.projection.{k}'] = W[f'depth_head.projects.{i}.{k}']
            if i != 2:
                H[f'neck.reassemble_stage.layers.{i}.resize.{k}'] = W[f'depth_head.resize_layers.{i}.{k}']
        H[f'neck.convs.{i}.weight'] = W[f'depth_head.scratch.layer{i + 1}_rn.weight']
    for j in range(4):
        s, h = f'depth_head.scratch.refinenet{4 - j}', f'neck.fusion_stage.layers.{j}'
        for k in ('weight', 'bias'):
            for u, hu in (('resConfUnit1', 'residual_layer1'), ('resConfUnit2', 'residual_layer2')):
                H[f'{h}.{hu}.convolution1.{k}'] = W[f'{s}.{u}.conv1.{k}']
                H[f'{h}.{hu}.convolution2.{k}'] = W[f'{s}.{u}.conv2.{k}']
            H[f'{h}.projection.{k}'] = W[f'{s}.out_conv.{k}']
    for k in ('weight', 'bias'):
        H[f'head.conv1.{k}'] = W[f'depth_head.scratch.output_conv1.{k}']
        H[f'head.conv2.{k}'] = W[f'depth_head.scratch.output_conv2.0.{k}']
        H[f'head.conv3.{k}'] = W[f'depth_head.scratch.output_conv2.2.{k}']
    assert len(H) == len(W) + 4 * C['layers'], (len(H), len(W))  # q, k, v where qkv was
    return H


def forward(W, x, rule, metric=None):
    """x [1, 3, H, W] float64 -> depth [1, H', W']; rule 'offset' (original) or 'size' (transformers)."""
    W = {k: v.double() for k, v in W.items()}
    d, p, nh = C['hidden'], C['patch'], C['heads']
    B, _, Hh, Ww = x.shape
    gh, gw = Hh // p, Ww // p
    t = F.conv2d(x, W['pretrained.patch_embed.proj.weight'], W['pretrained.patch_embed.proj.bias'], stride=p).flatten(2).transpose(1, 2)
    t = torch.cat([W['pretrained.cls_token'].expand(B, -1, -1), t], 1)
    pos = W['pretrained.pos_embed']
    M = int(math.sqrt(pos.shape[1] - 1))
    if gh * gw == M * M and gh == gw:
        pe = pos
    else:
        grid = pos[:, 1:].reshape(1, M, M, d).permute(0, 3, 1, 2)
        if rule == 'offset':
            r = F.interpolate(grid, scale_factor=((gh + 0.1) / M, (gw + 0.1) / M), mode='bicubic', align_corners=False)
        else:
            r = F.interpolate(grid, size=(gh, gw), mode='bicubic', align_corners=False)
        assert r.shape[-2:] == (gh, gw)
        pe = torch.cat([pos[:, :1], r.permute(0, 2, 3, 1).reshape(1, -1, d)], 1)
    t = t + pe
    feats = []
    for i in range(C['layers']):
        b = f'pretrained.blocks.{i}'
        h = F.layer_norm(t, (d,), W[f'{b}.norm1.weight'], W[f'{b}.norm1.bias'], EPS)
        qkv = F.linear(h, W[f'{b}.attn.qkv.weight'], W[f'{b}.attn.qkv.bias']).reshape(B, -1, 3, nh, d // nh).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // nh), -1) @ v
        a = F.linear(a.transpose(1, 2).reshape(B, -1, d), W[f'{b}.attn.proj.weight'], W[f'{b}.attn.proj.bias'])
        t = t + a * W[f'{b}.ls1.gamma']
        h = F.layer_norm(t, (d,), W[f'{b}.norm2.weight'], W[f'{b}.norm2.bias'], EPS)
        m = F.linear(F.gelu(F.linear(h, W[f'{b}.mlp.fc1.weight'], W[f'{b}.mlp.fc1.bias'])), W[f'{b}.mlp.fc2.weight'], W[f'{b}.mlp.fc2.bias'])
        t = t + m * W[f'{b}.ls2.gamma']
        if i in C['out']:
            feats.append(F.layer_norm(t, (d,), W['pretrained.norm.weight'], W['pretrained.norm.bias'], EPS)[:, 1:])

    def cv(name, y, stride=1, bias=True):
        w = W[f'{name}.weight']
        return F.conv2d(y, w, W[f'{name}.bias'] if bias else None, stride=stride, padding=w.shape[-1] // 2)

    maps = []
    for i, f in enumerate(feats):
        y = f.permute(0, 2, 1).reshape(B, d, gh, gw)
        y = cv(f'depth_head.projects.{i}', y)
        if i < 2:
            y = F.conv_transpose2d(y, W[f'depth_head.resize_layers.{i}.weight'], W[f'depth_head.resize_layers.{i}.bias'], stride=4 if i == 0 else 2)
        elif i == 3:
            y = cv('depth_head.resize_layers.3', y, stride=2)
        maps.append(cv(f'depth_head.scratch.layer{i + 1}_rn', y, bias=False))

    def rcu(s, y):
        return y + cv(f'{s}.conv2', F.relu(cv(f'{s}.conv1', F.relu(y))))

    def refine(j, y, skip=None, size=None):
        s = f'depth_head.scratch.refinenet{j}'
        if skip is not None:
            y = y + rcu(f'{s}.resConfUnit1', skip)
        y = rcu(f'{s}.resConfUnit2', y)
        y = F.interpolate(y, size=size, mode='bilinear', align_corners=True) if size else F.interpolate(y, scale_factor=2, mode='bilinear', align_corners=True)
        return cv(f'{s}.out_conv', y)

    l1, l2, l3, l4 = maps
    p4 = refine(4, l4, size=l3.shape[2:])
    p3 = refine(3, p4, l3, size=l2.shape[2:])
    p2 = refine(2, p3, l2, size=l1.shape[2:])
    p1 = refine(1, p2, l1)
    y = cv('depth_head.scratch.output_conv1', p1)
    y = F.interpolate(y, (gh * p, gw * p), mode='bilinear', align_corners=True)
    y = cv('depth_head.scratch.output_conv2.2', F.relu(cv('depth_head.scratch.output_conv2.0', y)))
    y = torch.sigmoid(y) * metric if metric else F.relu(y)
    return y[:, 0]


def config(metric=None):
    return {
        'architectures': ['DepthAnythingForDepthEstimation'], 'model_type': 'depth_anything', 'backbone': None,
        'backbone_config': {
            'model_type': 'dinov2', 'hidden_size': C['hidden'], 'num_hidden_layers': C['layers'], 'num_attention_heads': C['heads'], 'mlp_ratio': C['mlp'] / C['hidden'],
            'patch_size': C['patch'], 'image_size': C['image'], 'layerscale_value': 1.0, 'out_indices': [i + 1 for i in C['out']], 'reshape_hidden_states': False,
        },
        'patch_size': C['patch'], 'reassemble_hidden_size': C['hidden'], 'reassemble_factors': [4, 2, 1, 0.5], 'neck_hidden_sizes': C['neck'],
        'fusion_hidden_size': C['fusion'], 'head_in_index': -1, 'head_hidden_size': C['head_hidden'],
        'depth_estimation_type': 'metric' if metric else 'relative', 'max_depth': metric,
    }


def save(name, tensors, cfg=None, pth=None):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    if cfg is not None:
        with open(os.path.join(d, 'config.json'), 'w') as f:
            json.dump(cfg, f, indent=2)
    if pth:
        torch.save({k: v.contiguous() for k, v in tensors.items()}, os.path.join(d, pth))
    else:
        write_safetensors(os.path.join(d, 'model.safetensors'), tensors)


def resize_cases(g):
    x = torch.randn(1, 3, 5, 7, generator=g, dtype=torch.float64)
    cases = []
    for mode, ac, size, sf in (('bicubic', False, (3, 4), None), ('bicubic', False, (9, 11), None), ('bicubic', False, None, (2.6 / 2, 3.1 / 2)),
                                ('bicubic', False, None, (4.1 / 5, 6.1 / 7)), ('bilinear', True, (9, 13), None), ('bilinear', True, (3, 4), None),
                                ('bilinear', False, (9, 13), None), ('bilinear', False, (2, 3), None)):
        y = F.interpolate(x, size=size, scale_factor=sf, mode=mode, align_corners=ac)
        cases.append({'mode': mode, 'align_corners': ac, 'size': list(y.shape[2:]), 'scale_factor': list(sf) if sf else None, 'out': r8(y[0].permute(1, 2, 0).flatten().tolist())})
    return {'input': r8(x[0].permute(1, 2, 0).flatten().tolist()), 'shape': [5, 7, 3], 'cases': cases}


def r8(v):
    """8 significant digits: ample for a 1e-4 check, and half the file."""
    return [float(f'{x:.8g}') for x in v]


def main():
    g = torch.Generator().manual_seed(16)
    W = tensors(g)
    save('depth-orig', W, config())
    save('depth-hf', to_hf(W), config())
    save('depth-pth', W, config(), pth='depth_anything_tiny.pth')
    stored = {k: torch.from_numpy(v.numpy().astype(np.float32).astype(np.float64)) for k, v in W.items()}
    out = {}
    for name, (h, w) in (('square', (56, 56)), ('wide', (42, 70))):
        x = torch.rand(1, 3, h, w, generator=g, dtype=torch.float64) * 2 - 1
        out[name] = {
            'shape': [h, w], 'pixels': r8(x[0].permute(1, 2, 0).flatten().tolist()),  # NHWC
            'original': r8(forward(stored, x, 'offset').flatten().tolist()),
            'hf': r8(forward(stored, x, 'size').flatten().tolist()),
            'metric20_hf': r8(forward(stored, x, 'size', metric=20.0).flatten().tolist()),
        }
    with open(os.path.join(OUT, 'depth.json'), 'w') as f:
        json.dump(out, f)
    with open(os.path.join(OUT, '..', 'resize.json'), 'w') as f:
        json.dump(resize_cases(g), f)
    print({k: (min(v['original']), max(v['original'])) for k, v in out.items()})


if __name__ == '__main__':
    main()

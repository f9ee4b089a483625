#!/usr/bin/env python3
"""Reference values for src/nn/conv.ts, written from PyTorch's own operators (torch.nn.functional
conv2d, pad and group_norm), in float64: forward outputs and the gradients of
sum(y * r) for a fixed upstream gradient r with respect to the input, weight and bias.

Tensors are in PyTorch layout (activations NCHW, conv weights [out, in/groups, kh, kw]); inputs are
rounded to float32 first so both sides start from the same numbers.

    /usr/bin/python3 scripts/make-nn-fixtures.py   # writes test/fixtures/nn/conv.json
"""
import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'nn', 'conv.json')

gen = torch.Generator().manual_seed(20240514)


def draw(*shape):
    return torch.randn(*shape, generator=gen, dtype=torch.float64).float().double()


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def conv_case(name, n, cin, h, w, cout, k, stride=1, padding=0, dilation=1, groups=1, bias=True, pad4=None):
    """pad4 (left, right, top, bottom) is applied with F.pad before a conv with padding 0 (the SD
    VAE's asymmetric downsampling); otherwise conv2d's own symmetric `padding` is used."""
    x = draw(n, cin, h, w).requires_grad_()
    wt = draw(cout, cin // groups, k, k).mul(0.5).requires_grad_()
    b = draw(cout).requires_grad_() if bias else None
    xin = F.pad(x, pad4) if pad4 is not None else x
    y = F.conv2d(xin, wt, b, stride=stride, padding=0 if pad4 is not None else padding, dilation=dilation, groups=groups)
    r = draw(*y.shape)
    (y * r).sum().backward()
    if pad4 is not None:
        left, right, top, bottom = pad4
        pad = [[top, bottom], [left, right]]
    else:
        pad = [padding, padding]
    case = {
        'name': name, 'op': 'conv2d', 'stride': stride, 'padding': pad, 'dilation': dilation, 'groups': groups,
        'x_shape': list(x.shape), 'x': flat(x), 'w_shape': list(wt.shape), 'w': flat(wt),
        'y_shape': list(y.shape), 'y': flat(y), 'r': flat(r), 'dx': flat(x.grad), 'dw': flat(wt.grad),
    }
    if bias:
        case['b'] = flat(b)
        case['db'] = flat(b.grad)
    return case


def group_norm_case(name, n, c, h, w, groups, eps):
    x = draw(n, c, h, w).mul(2).add(0.5).requires_grad_()
    g = draw(c).requires_grad_()
    b = draw(c).requires_grad_()
    y = F.group_norm(x, groups, g, b, eps)
    r = draw(*y.shape)
    (y * r).sum().backward()
    return {
        'name': name, 'op': 'group_norm', 'groups': groups, 'eps': eps,
        'x_shape': list(x.shape), 'x': flat(x), 'w': flat(g), 'b': flat(b),
        'y': flat(y), 'r': flat(r), 'dx': flat(x.grad), 'dw': flat(g.grad), 'db': flat(b.grad),
    }


cases = [
    conv_case('3x3 same', 2, 3, 6, 5, 4, 3, padding=1),
    conv_case('stride 2 no bias', 1, 4, 7, 7, 3, 3, stride=2, padding=1, bias=False),
    conv_case('dilation 2', 1, 2, 8, 8, 3, 3, padding=2, dilation=2),
    conv_case('groups 2 stride 2 dilation 2', 2, 4, 9, 9, 6, 3, stride=2, padding=1, dilation=2, groups=2),
    conv_case('1x1', 2, 5, 3, 4, 2, 1),
    conv_case('VAE downsample (pad right/bottom, stride 2)', 1, 3, 6, 6, 3, 3, stride=2, pad4=(0, 1, 0, 1)),
    conv_case('depthwise', 1, 4, 5, 5, 4, 3, padding=1, groups=4),
    group_norm_case('group norm 4 of 8', 2, 8, 3, 4, 4, 1e-5),
    group_norm_case('group norm 1 (layer norm over C, H, W)', 1, 6, 2, 3, 1, 1e-6),
]

with open(OUT, 'w') as f:
    json.dump({'torch': torch.__version__, 'cases': cases}, f, separators=(',', ':'))
    f.write('\n')
print(f'{OUT}: {len(cases)} cases')

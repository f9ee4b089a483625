#!/usr/bin/python3
"""Reference features of the FID Inception network for test/eval/inception.test.ts.

The network is built as pytorch-fid builds it (pytorch_fid/inception.py, fid_inception_v3): Debian's
torchvision Inception3 (1008 classes, no aux head) with Mixed_5b-d replaced by FIDInceptionA,
Mixed_6b-e by FIDInceptionC, Mixed_7b by FIDInceptionE_1 and Mixed_7c by FIDInceptionE_2 (average
pools that do not count the padding; a max pool in the last block's pool branch), and features
taken as pytorch-fid's InceptionV3(output_blocks=[3]): bilinear resize to 299 (align_corners=False),
x -> 2x - 1, the blocks up to Mixed_7c, adaptive average pool -> 2048 numbers per image.

Weights are a counter-based hash of (tensor name, element index), so the test rebuilds the same
23.9 M numbers without a 95 MB fixture (weights(name, n) below; the TS twin is in the test):
  u = hash / 2^24 in [0, 1);  conv and fc weights (2u - 1) * sqrt(6 / fan_in);  BN gamma 1 + (2u - 1) / 4,
  beta and running mean (2u - 1) / 10, running var 0.5 + u.
The reference runs in float64 on the float32-rounded weights. Writes test/fixtures/fid/inception.safetensors
(the input images [N, H, W, 3] uint8 as F32, and the features [N, 2048]).
Run: /usr/bin/python3 scripts/make-inception-fixtures.py
"""
import importlib.util
import os

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models import inception as tv

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'fid')
_spec = importlib.util.spec_from_file_location('make_fixtures', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'make-fixtures.py'))
_mf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mf)
M32 = 0xFFFFFFFF


def fnv1a(name):
    h = 0x811C9DC5
    for b in name.encode():
        h = ((h ^ b) * 0x01000193) & M32
    return h


def uniform(name, n):
    """u in [0, 1) with 24 bits, from a murmur3-style finaliser of (element index, name hash)."""
    x = (np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B1) + np.uint64(fnv1a(name))) & np.uint64(M32)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & np.uint64(M32)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & np.uint64(M32)
    x ^= x >> np.uint64(16)
    return (x >> np.uint64(8)).astype(np.float64) / 2.0 ** 24


def weights(name, shape):
    n = int(np.prod(shape))
    u = uniform(name, n)
    if name.endswith('bn.weight'):
        v = 1 + (2 * u - 1) / 4
    elif name.endswith('bn.bias') or name.endswith('running_mean') or name.endswith('fc.bias'):
        v = (2 * u - 1) / 10
    elif name.endswith('running_var'):
        v = 0.5 + u
    else:
        v = (2 * u - 1) * np.sqrt(6.0 / (n / shape[0]))
    return torch.from_numpy(v.astype(np.float32).astype(np.float64).reshape(shape))


class FIDInceptionA(tv.InceptionA):
    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b5, bd, bp], 1)


class FIDInceptionC(tv.InceptionC):
    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for m in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = m(bd)
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b7, bd, bp], 1)


class FIDInceptionE(tv.InceptionE):
    def __init__(self, in_channels, max_pool):
        super().__init__(in_channels)
        self.max_pool = max_pool

    def forward(self, x):
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.max_pool:  # FIDInceptionE_2: the TF graph's last block pools with a max
            p = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            p = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([b1, b3, bd, self.branch_pool(p)], 1)


def fid_inception():
    net = tv.Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE(1280, max_pool=False)
    net.Mixed_7c = FIDInceptionE(2048, max_pool=True)
    return net


def pool_features(net, x):
    """pytorch-fid InceptionV3(output_blocks=[3], resize_input=True, normalize_input=True) on x in [0, 1]."""
    x = F.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False)
    x = 2 * x - 1
    for name in ('Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3'):
        x = getattr(net, name)(x)
    x = F.max_pool2d(x, kernel_size=3, stride=2)
    x = net.Conv2d_4a_3x3(net.Conv2d_3b_1x1(x))
    x = F.max_pool2d(x, kernel_size=3, stride=2)
    for name in ('Mixed_5b', 'Mixed_5c', 'Mixed_5d', 'Mixed_6a', 'Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e', 'Mixed_7a', 'Mixed_7b', 'Mixed_7c'):
        x = getattr(net, name)(x)
    return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)


def main():
    net = fid_inception().double().eval()
    sd = net.state_dict()
    sd = {k: (weights(k, tuple(v.shape)) if v.dtype.is_floating_point else v) for k, v in sd.items()}
    net.load_state_dict(sd)
    gen = torch.Generator().manual_seed(299)
    images = torch.randint(0, 256, (2, 24, 20, 3), generator=gen)  # N, H, W, C: not square, not 299
    with torch.no_grad():
        feats = pool_features(net, images.permute(0, 3, 1, 2).double() / 255)
    _mf.write_safetensors(os.path.join(ROOT, 'inception.safetensors'), {'images': images.double(), 'features': feats})
    print('features', tuple(feats.shape), 'range', feats.min().item(), feats.max().item(), 'params', sum(v.numel() for v in sd.values()))


if __name__ == '__main__':
    main()

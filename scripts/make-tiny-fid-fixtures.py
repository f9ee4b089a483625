#!/usr/bin/python3
"""Reference features and FID of the tiny demo's feature network for test/eval/tiny-fid.test.ts.

The network (src/eval/tiny-fid.ts, written here from its description in docs/dit.md, in torch):
x = image / 127.5 - 1 (NCHW), then three times F.pad(x, (0, 1, 0, 1)) (one row below, one column
to the right), a 3 x 3 stride-2 convolution without bias and ReLU (3 -> 16 -> 32 -> 16 channels),
then avg_pool2d with kernel and stride H/16 (a 2 x 2 grid), flattened as (row, column, channel):
64 features. Its weights are given (N(0, 2/fan_in) from numpy, rounded to float32), so the test
loads the same ones; the reference runs in float64. FID as pytorch-fid's calculate_frechet_distance
(numpy.cov ddof 1; the trace of the square root by
symmetric eigenvalues, as the covariances are singular). Writes test/fixtures/fid/tiny-fid.safetensors:
  w0 [16, 3, 3, 3], w1 [32, 16, 3, 3], w2 [16, 32, 3, 3]  (torch layout)
  a [12, 16, 16, 3], b [12, 16, 16, 3]  uint8 images as F32 (b: brighter, with a bright square)
  c [3, 32, 32, 3]                       uint8 images as F32 (another size)
  feat_a [12, 64], feat_c [3, 64]        features
  fid_ab [1]                             FID of b against a
Run: /usr/bin/python3 scripts/make-tiny-fid-fixtures.py
"""
import importlib.util
import os

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'fid')
_spec = importlib.util.spec_from_file_location('make_fixtures', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'make-fixtures.py'))
_mf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mf)

CHANNELS = [3, 16, 32, 16]


def features(images, ws):
    x = torch.from_numpy(images.astype(np.float64)).permute(0, 3, 1, 2) / 127.5 - 1
    h = x.shape[2]
    for w in ws:
        x = F.relu(F.conv2d(F.pad(x, (0, 1, 0, 1)), w, stride=2))
    x = F.avg_pool2d(x, kernel_size=h // 16, stride=h // 16)
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1).numpy()


def frechet(f1, f2):
    """FID with numpy.cov (ddof 1); Tr (S1 S2)^1/2 = sum of sqrt(eig(S1^1/2 S2 S1^1/2)) by eigh: with 12
    images in 64 dimensions both covariances are singular, where scipy's sqrtm of S1 S2 gives NaN."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    lam, q = np.linalg.eigh(s1)
    r = (q * np.sqrt(np.clip(lam, 0, None))) @ q.T
    tr = np.sqrt(np.clip(np.linalg.eigvalsh(r @ s2 @ r), 0, None)).sum()
    d = mu1 - mu2
    return float(d.dot(d) + np.trace(s1) + np.trace(s2) - 2 * tr)


def main():
    rng = np.random.default_rng(7)
    ws = []
    for cin, cout in zip(CHANNELS[:-1], CHANNELS[1:]):
        w = rng.normal(0, np.sqrt(2 / (9 * cin)), size=(cout, cin, 3, 3)).astype(np.float32)
        ws.append(torch.from_numpy(w.astype(np.float64)))
    a = rng.integers(0, 256, size=(12, 16, 16, 3)).astype(np.float64)
    b = np.clip(rng.integers(0, 256, size=(12, 16, 16, 3)) * 0.7 + 60, 0, 255).round()
    b[:, 4:10, 6:12, :] = 250
    c = rng.integers(0, 256, size=(3, 32, 32, 3)).astype(np.float64)
    fa, fb, fc = features(a, ws), features(b, ws), features(c, ws)
    os.makedirs(ROOT, exist_ok=True)
    out = {'w0': ws[0], 'w1': ws[1], 'w2': ws[2], 'a': a, 'b': b, 'c': c, 'feat_a': fa, 'feat_c': fc, 'fid_ab': np.array([frechet(fa, fb)])}
    path = os.path.join(ROOT, 'tiny-fid.safetensors')
    _mf.write_safetensors(path, {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in out.items()})
    print(f'{path}: fid(b vs a) = {out["fid_ab"][0]:.6f}')


if __name__ == '__main__':
    main()

#!/usr/bin/python3
"""Reference Fréchet distances for test/eval/frechet.test.ts, computed as pytorch-fid's
calculate_frechet_distance does (scipy.linalg.sqrtm of sigma1 @ sigma2; numpy.cov with ddof 1):

  fid = |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrtm(sigma1 sigma2))

Writes test/fixtures/fid/:
  d2048.safetensors  D = 2048 statistics in a compact form, Σ = Q diag(λ) Qᵀ with Q a product of
                     three Householder reflections (u1, u2, u3) and an Inception-like decaying
                     spectrum, so the test rebuilds the same 2048 × 2048 matrices from 50 KB;
                     the reference distance and SciPy's time are in the metadata
  small.safetensors  raw features (100 × 64 and 20 × 64: one full-rank and one singular pair of
                     covariances) with their reference distances
  stats.npz          pytorch-fid's stats file of the first 100 × 64 features (mu, sigma)
  adm.npz            an ADM-style reference batch file holding arr_0 (images, uint8) and mu/sigma
  feats.npy          the 20 × 64 features as a .npy
Run: /usr/bin/python3 scripts/make-fid-fixtures.py
"""
import importlib.util
import json
import os
import time

import numpy as np
import torch
from scipy import linalg

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'fid')
_spec = importlib.util.spec_from_file_location('make_fixtures', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'make-fixtures.py'))
_mf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mf)


def write(path, arrays, metadata):
    """make-fixtures.py's writer, with metadata."""
    _mf.write_safetensors(path, {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in arrays.items()})
    # Re-write the header with the metadata (the writer's layout, sorted names, 8-byte padding).
    raw = open(path, 'rb').read()
    n = int.from_bytes(raw[:8], 'little')
    header = json.loads(raw[8:8 + n])
    header['__metadata__'] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(len(h).to_bytes(8, 'little') + h + raw[8 + n:])


def frechet(mu1, s1, mu2, s2):
    """pytorch-fid's calculate_frechet_distance (without its eps retry, which these inputs never need)."""
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def householder_cov(us, lam):
    d = lam.shape[0]
    q = np.eye(d)
    for u in us:
        q = q - 2.0 * np.outer(q @ u, u) / u.dot(u)  # q · (I − 2 u uᵀ / uᵀu)
    return (q * lam) @ q.T


def f32(x):
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def main():
    os.makedirs(ROOT, exist_ok=True)
    rng = np.random.default_rng(2048)
    d = 2048
    arrays = {}
    stats = []
    for tag, decay in (('a', 180.0), ('b', 220.0)):
        us = [f32(rng.standard_normal(d)) for _ in range(3)]
        lam = f32(4.0 * np.exp(-np.arange(d) / decay) + 1e-3 * rng.random(d))
        mu = f32(0.3 * rng.standard_normal(d))
        for i, u in enumerate(us):
            arrays[f'{tag}_u{i}'] = u
        arrays[f'{tag}_lambda'] = lam
        arrays[f'{tag}_mu'] = mu
        stats.append((mu, householder_cov(us, lam)))
    t0 = time.time()
    fid = frechet(stats[0][0], stats[0][1], stats[1][0], stats[1][1])
    seconds = time.time() - t0
    write(os.path.join(ROOT, 'd2048.safetensors'), arrays, {'fid': repr(fid), 'scipy_seconds': f'{seconds:.2f}'})
    print(f'D=2048: fid {fid!r}, scipy sqrtm path {seconds:.2f} s')

    small = {}
    meta = {}
    for tag, n in (('full', 100), ('singular', 20)):
        real = f32(rng.standard_normal((n, 64)) * np.linspace(0.5, 2.0, 64))
        fake = f32(rng.standard_normal((n, 64)) * np.linspace(0.6, 1.8, 64) + 0.1)
        small[f'{tag}_real'] = real
        small[f'{tag}_fake'] = fake
        mr, sr = real.mean(0), np.cov(real, rowvar=False)
        mf, sf = fake.mean(0), np.cov(fake, rowvar=False)
        meta[f'{tag}_fid'] = repr(frechet(mr, sr, mf, sf))
        if tag == 'full':
            np.savez(os.path.join(ROOT, 'stats.npz'), mu=mr, sigma=sr)
            # An ADM reference batch: images (arr_0) and the statistics of their features (mu, sigma).
            np.savez(os.path.join(ROOT, 'adm.npz'), arr_0=rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8), mu=mr, sigma=sr)
        else:
            np.save(os.path.join(ROOT, 'feats.npy'), fake.astype(np.float32))
            meta['singular_real_vs_npy_fid'] = meta['singular_fid']
    write(os.path.join(ROOT, 'small.safetensors'), small, meta)
    print(meta)


if __name__ == '__main__':
    main()

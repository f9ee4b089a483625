// The Fréchet distance against pytorch-fid's formula with scipy.linalg.sqrtm
// (scripts/make-fid-fixtures.py): at Inception's D = 2048 (the statistics rebuilt from a compact
// form, Σ = H₁H₂H₃ diag(λ) H₃H₂H₁), and on raw features with full-rank and singular covariances;
// .npy/.npz statistics and features as pytorch-fid and ADM write them.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { featureStats, fidFromFiles, frechetDistance, readStats, type FeatureStats } from '../../src/eval/fid.js';
import { pivotedCholesky, symmetricEigenvalues } from '../../src/eval/frechet.js';
import { readNpz, writeNpz } from '../../src/eval/npy.js';
import { tmpDir } from '../helpers.js';

const FIX = path.join(import.meta.dirname, '..', 'fixtures', 'fid');
const REL = 1e-3;

/** Σ ← H Σ H with H = I − 2 u uᵀ / uᵀu, in O(d²): Σ − u aᵀ − a uᵀ + (uᵀ a)... written out below. */
function reflect(s: Float64Array, u: Float64Array, d: number): void {
  const uu = u.reduce((a, v) => a + v * v, 0);
  const su = new Float64Array(d); // Σ u
  for (let i = 0; i < d; i++) {
    let acc = 0;
    for (let j = 0; j < d; j++) acc += s[i * d + j]! * u[j]!;
    su[i] = acc;
  }
  const usu = u.reduce((a, v, i) => a + v * su[i]!, 0);
  const c = 2 / uu;
  // H Σ H = Σ − c u (Σu)ᵀ − c (Σu) uᵀ + c² (uᵀΣu) u uᵀ
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) s[i * d + j]! += -c * u[i]! * su[j]! - c * su[i]! * u[j]! + c * c * usu * u[i]! * u[j]!;
}

function compactStats(t: ReadonlyMap<string, { data: unknown }>, tag: string, d: number): FeatureStats {
  const f64 = (n: string): Float64Array => Float64Array.from(t.get(`${tag}_${n}`)!.data as Float32Array);
  const cov = new Float64Array(d * d);
  const lam = f64('lambda');
  for (let i = 0; i < d; i++) cov[i * d + i] = lam[i]!;
  for (const k of [2, 1, 0]) reflect(cov, f64(`u${k}`), d); // Q = H₀H₁H₂: Σ = H₀(H₁(H₂ Λ H₂)H₁)H₀
  return { n: 0, dim: d, mean: f64('mu'), cov };
}

const rel = (a: number, b: number): number => Math.abs(a - b) / Math.abs(b);

test('D = 2048: equals pytorch-fid/SciPy to 1e-3 relative, in seconds', () => {
  const f = readSafetensors(path.join(FIX, 'd2048.safetensors'));
  const a = compactStats(f.tensors, 'a', 2048);
  const b = compactStats(f.tensors, 'b', 2048);
  const t0 = performance.now();
  const fid = frechetDistance(a, b);
  const s = (performance.now() - t0) / 1000;
  const want = Number(f.metadata.fid);
  console.log(`D=2048: FID ${fid} vs SciPy ${want} (relative ${rel(fid, want).toExponential(2)}); ${s.toFixed(1)} s here, SciPy's sqrtm path ${f.metadata.scipy_seconds} s`);
  assert.ok(rel(fid, want) < REL, `${fid} vs ${want}`);
});

test('raw features, full-rank and singular covariances; .npy features and .npz stats', () => {
  const f = readSafetensors(path.join(FIX, 'small.safetensors'));
  for (const tag of ['full', 'singular']) {
    const x = (side: string): FeatureStats => {
      const t = f.tensors.get(`${tag}_${side}`)!;
      return featureStats(t.data as Float32Array, t.shape[0]!, t.shape[1]!);
    };
    const fid = frechetDistance(x('real'), x('fake'));
    assert.ok(rel(fid, Number(f.metadata[`${tag}_fid`])) < REL, `${tag}: ${fid} vs ${f.metadata[`${tag}_fid`]}`);
  }
  // stats.npz holds the full real set's mu/sigma (np.cov ddof 1): equal to featureStats of the rows.
  const t = f.tensors.get('full_real')!;
  const mine = featureStats(t.data as Float32Array, 100, 64);
  const npz = readStats(path.join(FIX, 'stats.npz'));
  assert.ok(npz.cov.every((v, i) => Math.abs(v - mine.cov[i]!) < 1e-9 * (1 + Math.abs(v))));
  // feats.npy = the singular fake set, against the real rows from a .npy-free route.
  const dir = tmpDir('fid');
  writeNpz(path.join(dir, 'real.npz'), { mu: { data: featureStatsOf(f, 'singular_real').mean, shape: [64] }, sigma: { data: featureStatsOf(f, 'singular_real').cov, shape: [64, 64] } });
  const r = fidFromFiles(path.join(dir, 'real.npz'), path.join(FIX, 'feats.npy'));
  assert.ok(rel(r.fid, Number(f.metadata.singular_real_vs_npy_fid)) < REL);
  assert.equal(r.n_fake, 20);
  // ADM's reference batch: arr_0 images beside mu/sigma; the stats are what --real takes.
  const adm = readNpz(path.join(FIX, 'adm.npz'));
  assert.deepEqual(adm.get('arr_0')!.shape, [2, 8, 8, 3]);
  assert.ok(Math.abs(fidFromFiles(path.join(FIX, 'adm.npz'), path.join(FIX, 'stats.npz')).fid) < 1e-6);
});

function featureStatsOf(f: ReturnType<typeof readSafetensors>, name: string): FeatureStats {
  const t = f.tensors.get(name)!;
  return featureStats(t.data as Float32Array, t.shape[0]!, t.shape[1]!);
}

test('pivoted Cholesky finds the rank; tridiagonal QL gives known eigenvalues', () => {
  // diag(3, 0, 1) rotated by a reflection: rank 2, eigenvalues 3, 1, 0.
  const d = 3;
  const s = Float64Array.from([3, 0, 0, 0, 0, 0, 0, 0, 1]);
  reflect(s, Float64Array.from([1, 2, -1]), d);
  assert.equal(pivotedCholesky(s, d).rank, 2);
  const ev = [...symmetricEigenvalues(Float64Array.from(s), d)].sort((a, b) => a - b);
  [0, 1, 3].forEach((v, i) => assert.ok(Math.abs(ev[i]! - v) < 1e-12, `${ev.join(', ')}`));
});

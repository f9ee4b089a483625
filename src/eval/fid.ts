// Fréchet Inception Distance (Heusel et al., "GANs Trained by a Two Time-Scale Update Rule
// Converge to a Local Nash Equilibrium", 2017) from pre-computed features:
//   FID = ‖μ_r − μ_f‖² + Tr Σ_r + Tr Σ_f − 2 Tr (Σ_r Σ_f)^{1/2}
// with unbiased covariances (numpy.cov). Tr (Σ_r Σ_f)^{1/2} = Tr (A Σ_f A)^{1/2} with A = Σ_r^{1/2}:
// A Σ_f A is symmetric PSD, so both square roots come from symmetric eigendecompositions (cyclic
// Jacobi, float64) and need no complex arithmetic as scipy.linalg.sqrtm does. Cost O(D³) per sweep:
// D = 2048 (Inception pool3) takes minutes in JS; the features themselves come from elsewhere.
import fs from 'node:fs';
import { FixedSizeList, tableFromIPC, type Data } from 'apache-arrow';
import { openSafetensors } from '../checkpoint/safetensors.js';
import { UserError } from '../errors.js';
import { symmetricEigen } from '../nn/linalg.js';

export interface FeatureStats {
  readonly n: number;
  readonly dim: number;
  readonly mean: Float64Array;
  /** [dim, dim] row-major, unbiased (÷ (n − 1)) */
  readonly cov: Float64Array;
}

/** Mean and covariance of n feature rows of length dim, stored back to back. */
export function featureStats(rows: ArrayLike<number>, n: number, dim: number): FeatureStats {
  if (n < 2) throw new UserError(`need at least 2 feature rows for a covariance, got ${n}`);
  const mean = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) mean[j]! += rows[i * dim + j]!;
  for (let j = 0; j < dim; j++) mean[j]! /= n;
  const cov = new Float64Array(dim * dim);
  const c = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < dim; j++) c[j] = rows[i * dim + j]! - mean[j]!;
    for (let a = 0; a < dim; a++) {
      const ca = c[a]!;
      if (ca === 0) continue;
      const row = a * dim;
      for (let b = a; b < dim; b++) cov[row + b]! += ca * c[b]!;
    }
  }
  for (let a = 0; a < dim; a++) {
    for (let b = a; b < dim; b++) {
      const v = cov[a * dim + b]! / (n - 1);
      cov[a * dim + b] = v;
      cov[b * dim + a] = v;
    }
  }
  return { n, dim, mean, cov };
}

/** V diag(f(λ)) Vᵀ for a symmetric matrix. */
function spectralMap(m: Float64Array, d: number, f: (lambda: number) => number): Float64Array {
  const { values, vectors } = symmetricEigen(m, d);
  const fl = values.map((x) => f(x));
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += vectors[i * d + k]! * fl[k]! * vectors[j * d + k]!;
      out[i * d + j] = s;
      out[j * d + i] = s;
    }
  }
  return out;
}

/** [d, d] · [d, d], row-major. */
function matmul(a: Float64Array, b: Float64Array, d: number): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let k = 0; k < d; k++) {
      const aik = a[i * d + k]!;
      if (aik === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j]! += aik * b[k * d + j]!;
    }
  }
  return out;
}

/** Tr (A B)^{1/2} for symmetric PSD A, B (negative eigenvalues from rounding are clamped to 0). */
export function traceSqrtProduct(a: Float64Array, b: Float64Array, d: number): number {
  const half = spectralMap(a, d, (x) => Math.sqrt(Math.max(x, 0)));
  const m = matmul(matmul(half, b, d), half, d);
  for (let i = 0; i < d; i++) for (let j = i + 1; j < d; j++) m[i * d + j] = m[j * d + i] = (m[i * d + j]! + m[j * d + i]!) / 2;
  return symmetricEigen(m, d).values.reduce((s, x) => s + Math.sqrt(Math.max(x, 0)), 0);
}

export function frechetDistance(r: FeatureStats, f: FeatureStats): number {
  if (r.dim !== f.dim) throw new UserError(`feature sizes differ: ${r.dim} (real) vs ${f.dim} (fake)`);
  const d = r.dim;
  let dist = 0;
  let tr = 0;
  for (let i = 0; i < d; i++) {
    dist += (r.mean[i]! - f.mean[i]!) ** 2;
    tr += r.cov[i * d + i]! + f.cov[i * d + i]!;
  }
  return dist + tr - 2 * traceSqrtProduct(r.cov, f.cov, d);
}

export interface Features {
  readonly data: Float32Array | Float64Array;
  readonly n: number;
  readonly dim: number;
}

/** Arrow: a column `features`, FixedSizeList of floats (one row per image). */
function readArrowFeatures(file: string): Features {
  const table = tableFromIPC(fs.readFileSync(file));
  const col = table.getChild('features');
  if (!col) throw new UserError(`${file}: no column 'features' (columns: ${table.schema.fields.map((f) => f.name).join(', ')})`);
  const type = col.type as unknown;
  if (!(type instanceof FixedSizeList)) throw new UserError(`${file}: column 'features' is ${String(col.type)}, expected FixedSizeList<Float32|Float64>`);
  const dim = type.listSize;
  const out = new Float64Array(col.length * dim);
  let at = 0;
  for (const d of col.data as Data[]) {
    const vals = d.children[0]!.values as Float32Array | Float64Array;
    if (!(vals instanceof Float32Array || vals instanceof Float64Array)) throw new UserError(`${file}: column 'features' does not hold floats`);
    out.set(vals.subarray(d.offset * dim, (d.offset + d.length) * dim), at);
    at += d.length * dim;
  }
  return { data: out, n: col.length, dim };
}

/** Features from `.safetensors` (tensor `features` [N, D]) or Arrow IPC (`.arrow`, column `features`). */
function readFeatures(file: string): Features {
  if (!fs.existsSync(file)) throw new UserError(`${file}: no such feature file`);
  if (file.endsWith('.safetensors')) {
    const src = openSafetensors(file);
    try {
      const info = src.tensors.get('features');
      if (!info) throw new UserError(`${file}: no tensor 'features' (tensors: ${[...src.tensors.keys()].join(', ')})`);
      if (info.shape.length !== 2) throw new UserError(`${file}: tensor 'features' has shape [${info.shape.join(', ')}], expected [N, D]`);
      const t = src.read('features');
      if (!(t.data instanceof Float32Array)) throw new UserError(`${file}: tensor 'features' is ${t.dtype}, expected F32/F16/BF16`);
      return { data: t.data, n: info.shape[0]!, dim: info.shape[1]! };
    } finally {
      src.close();
    }
  }
  if (file.endsWith('.arrow') || file.endsWith('.feather') || file.endsWith('.ipc')) return readArrowFeatures(file);
  throw new UserError(`${file}: feature files are .safetensors (tensor 'features' [N, D]) or .arrow (column 'features'); .npz is not read — convert it with numpy + safetensors`);
}

export interface FidResult {
  readonly fid: number;
  readonly n_real: number;
  readonly n_fake: number;
  readonly dim: number;
}

export function fidFromFiles(realFile: string, fakeFile: string): FidResult {
  const r = readFeatures(realFile);
  const f = readFeatures(fakeFile);
  if (r.dim !== f.dim) throw new UserError(`feature sizes differ: ${realFile} has ${r.dim}, ${fakeFile} has ${f.dim}`);
  const fid = frechetDistance(featureStats(r.data, r.n, r.dim), featureStats(f.data, f.n, f.dim));
  return { fid, n_real: r.n, n_fake: f.n, dim: r.dim };
}

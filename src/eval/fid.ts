// Fréchet Inception Distance (Heusel et al., "GANs Trained by a Two Time-Scale Update Rule
// Converge to a Local Nash Equilibrium", 2017) from pre-computed features:
//   FID = ‖μ_r − μ_f‖² + Tr Σ_r + Tr Σ_f − 2 Tr (Σ_r Σ_f)^{1/2}
// with unbiased covariances (numpy.cov, ddof 1), as pytorch-fid computes it. The trace of the square
// root comes from symmetric eigenvalues in float64 (src/eval/frechet.ts: seconds at Inception's
// D = 2048). Features and statistics are read from safetensors, Arrow, .npy and .npz (pytorch-fid's
// `mu`/`sigma`, ADM's reference batches) files.
import fs from 'node:fs';
import { FixedSizeList, tableFromIPC, type Data } from 'apache-arrow';
import { openSafetensors } from '../checkpoint/safetensors.js';
import { UserError } from '../errors.js';
import { traceSqrtProduct } from './frechet.js';
import { readNpy, readNpz } from './npy.js';

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

/** Features [N, D] from `.safetensors` (tensor `features`), Arrow IPC (column `features`) or `.npy`. */
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
  if (file.endsWith('.npy')) {
    const a = readNpy(file);
    if (a.shape.length !== 2) throw new UserError(`${file}: features have shape [${a.shape.join(', ')}], expected [N, D]`);
    return { data: a.data, n: a.shape[0]!, dim: a.shape[1]! };
  }
  if (file.endsWith('.arrow') || file.endsWith('.feather') || file.endsWith('.ipc')) return readArrowFeatures(file);
  throw new UserError(`${file}: feature files are .safetensors (tensor 'features' [N, D]), .arrow (column 'features') or .npy [N, D]; statistics are .npz (mu, sigma)`);
}

/** pytorch-fid's (and ADM's) statistics in an .npz: `mu` [D] and `sigma` [D, D]; n is not recorded. */
export function readNpzStats(file: string): FeatureStats | null {
  const arrays = readNpz(file);
  const mu = arrays.get('mu');
  const sigma = arrays.get('sigma');
  if (!mu || !sigma) return null;
  const d = mu.shape[0]!;
  if (mu.shape.length !== 1 || sigma.shape.length !== 2 || sigma.shape[0] !== d || sigma.shape[1] !== d) {
    throw new UserError(`${file}: mu [${mu.shape.join(', ')}] and sigma [${sigma.shape.join(', ')}] are not [D] and [D, D]`);
  }
  return { n: 0, dim: d, mean: mu.data, cov: sigma.data };
}

/** Statistics from a features file or an .npz with mu/sigma. */
export function readStats(file: string): FeatureStats {
  if (file.endsWith('.npz')) {
    if (!fs.existsSync(file)) throw new UserError(`${file}: no such statistics file`);
    const s = readNpzStats(file);
    if (!s) throw new UserError(`${file}: no 'mu' and 'sigma' arrays (an ADM batch of images, arr_0, needs the Inception network: eval fid --images … --ref ${file})`);
    return s;
  }
  const f = readFeatures(file);
  return featureStats(f.data, f.n, f.dim);
}

export interface FidResult {
  readonly fid: number;
  /** Rows behind each side; 0 where the statistics came from an .npz, which does not record it. */
  readonly n_real: number;
  readonly n_fake: number;
  readonly dim: number;
}

export function fidFromFiles(realFile: string, fakeFile: string): FidResult {
  const r = readStats(realFile);
  const f = readStats(fakeFile);
  if (r.dim !== f.dim) throw new UserError(`feature sizes differ: ${realFile} has ${r.dim}, ${fakeFile} has ${f.dim}`);
  return { fid: frechetDistance(r, f), n_real: r.n, n_fake: f.n, dim: r.dim };
}

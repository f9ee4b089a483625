// Dense float64 linear algebra on the host, for the statistics that are too small or too exact for
// a tensor backend: FID's matrix square roots (src/eval/fid.ts) and the PCA of fine-tuning updates
// (src/bench/pca.ts). Matrices are row-major [d, d].

/**
 * Eigen-decomposition of a symmetric matrix by cyclic Jacobi rotations (Numerical Recipes §11.1):
 * A = V diag(λ) Vᵀ, the eigenvectors in V's columns, in no particular order. Converges
 * quadratically once the off-diagonal mass is small; sweeps stop when it is below 1e-30 of ‖A‖²_F.
 */
export function symmetricEigen(matrix: ArrayLike<number>, d: number, maxSweeps = 50): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  let norm = 0;
  for (let i = 0; i < d * d; i++) norm += a[i]! * a[i]!;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += a[p * d + q]! ** 2;
    if (off <= 1e-30 * norm || off === 0) break;
    for (let p = 0; p < d - 1; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = a[p * d + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        // The rotation [[c, s], [−s, c]] in the (p, q) plane that zeroes a_pq.
        const theta = (a[q * d + q]! - a[p * d + p]!) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < d; k++) {
          const akp = a[k * d + p]!;
          const akq = a[k * d + q]!;
          a[k * d + p] = c * akp - s * akq;
          a[k * d + q] = s * akp + c * akq;
        }
        for (let k = 0; k < d; k++) {
          const apk = a[p * d + k]!;
          const aqk = a[q * d + k]!;
          a[p * d + k] = c * apk - s * aqk;
          a[q * d + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p]!;
          const vkq = v[k * d + q]!;
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: Float64Array.from({ length: d }, (_, i) => a[i * d + i]!), vectors: v };
}

/** The eigenpairs of a symmetric matrix, largest eigenvalue first, each eigenvector as its own array. */
export function sortedEigen(matrix: ArrayLike<number>, d: number): { values: number[]; vectors: Float64Array[] } {
  const { values, vectors } = symmetricEigen(matrix, d);
  const order = Array.from({ length: d }, (_, i) => i).sort((x, y) => values[y]! - values[x]!);
  return { values: order.map((i) => values[i]!), vectors: order.map((j) => Float64Array.from({ length: d }, (_, r) => vectors[r * d + j]!)) };
}

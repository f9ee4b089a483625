// Tr (Σ₁ Σ₂)^{1/2} for FID at Inception's D = 2048 in seconds, in float64. Hand-written: no
// maintained npm package in this project does symmetric eigenvalues in float64 (ml-matrix would,
// and is not a dependency); each step is a textbook algorithm.
//
// The eigenvalues of Σ₁Σ₂ are real and ≥ 0 (Σ₁Σ₂ is similar to a PSD matrix), and the trace of its
// principal square root (what scipy.linalg.sqrtm gives pytorch-fid) is Σ √λᵢ. With the pivoted
// Cholesky factorisation Pᵀ Σ₁ P = L Lᵀ (L [D, r], r = rank Σ₁; Golub & Van Loan §4.2.8), Σ₁Σ₂ has
// the nonzero eigenvalues of the symmetric B = Lᵀ (Pᵀ Σ₂ P) L [r, r]. B's eigenvalues come from a
// Householder tridiagonalisation (G&VL §8.3.1) followed by the implicit QL iteration with Wilkinson
// shifts (Numerical Recipes `tqli`), values only. Cost ≈ 1.8 D³ multiply-adds, all of them
// contiguous dot products and row updates, against the Jacobi sweeps' ~10 D³ with strided access:
// at D = 2048 about 14 s of one core (Cholesky 3, products 4, tridiagonalisation 7), as long as
// SciPy's sqrtm takes on the same machine; the tridiagonalisation is memory-bound there.
// Works for a singular Σ₁ (fewer images than features) since only its range is factorised.

/** Σᵢ a[ia + i] · b[ib + i], i < n (unrolled by 4: V8 keeps four independent sums in registers). */
function dot(a: Float64Array, ia: number, b: Float64Array, ib: number, n: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = 0;
  for (; i + 3 < n; i += 4) {
    s0 += a[ia + i]! * b[ib + i]!;
    s1 += a[ia + i + 1]! * b[ib + i + 1]!;
    s2 += a[ia + i + 2]! * b[ib + i + 2]!;
    s3 += a[ia + i + 3]! * b[ib + i + 3]!;
  }
  for (; i < n; i++) s0 += a[ia + i]! * b[ib + i]!;
  return s0 + s1 + s2 + s3;
}

/**
 * out[(k − k0)·stride + at] = dot(x[xa ..], Lᵀ row k) for the rows k0 ≤ k < k1 (≤ 4) of lt [·, d],
 * each from index k0 (rows of Lᵀ are zero before their own index). One pass over x for four rows:
 * at D = 2048 the operands do not fit in cache, and streaming them once per row would be memory-bound.
 */
function dots4(x: Float64Array, xa: number, lt: Float64Array, k0: number, k1: number, d: number, out: Float64Array, at: number, stride: number): void {
  const n = k1 - k0;
  const r0 = k0 * d;
  const r1 = r0 + d;
  const r2 = r1 + d;
  const r3 = r2 + d;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  if (n === 4) {
    for (let j = k0; j < d; j++) {
      const v = x[xa + j]!;
      s0 += v * lt[r0 + j]!;
      s1 += v * lt[r1 + j]!;
      s2 += v * lt[r2 + j]!;
      s3 += v * lt[r3 + j]!;
    }
  } else {
    for (let q = 0; q < n; q++) out[q * stride + at] = dot(x, xa + k0, lt, r0 + q * d + k0, d - k0);
    return;
  }
  out[at] = s0;
  out[stride + at] = s1;
  out[2 * stride + at] = s2;
  out[3 * stride + at] = s3;
}

/**
 * Pivoted Cholesky of a symmetric PSD [d, d]: Lᵀ as r rows of length d (row k = column k of L,
 * zero before index k) in the pivoted order `perm`. Stops when the largest remaining pivot is
 * below `relTol` × the largest diagonal entry (the rank found).
 */
export function pivotedCholesky(a: ArrayLike<number>, d: number, relTol = 1e-13): { lt: Float64Array; perm: Int32Array; rank: number } {
  const w = Float64Array.from(a); // the Schur complement, lower triangle used (row-major)
  const perm = Int32Array.from({ length: d }, (_, i) => i);
  let maxDiag = 0;
  for (let i = 0; i < d; i++) maxDiag = Math.max(maxDiag, w[i * d + i]!);
  const lt = new Float64Array(d * d);
  const col = new Float64Array(d);
  let r = 0;
  for (let k = 0; k < d; k++) {
    let p = k;
    for (let i = k + 1; i < d; i++) if (w[i * d + i]! > w[p * d + p]!) p = i;
    if (!(w[p * d + p]! > relTol * maxDiag)) break;
    if (p !== k) swapSymmetric(w, d, k, p, perm, lt, r);
    const pivot = Math.sqrt(w[k * d + k]!);
    col.fill(0);
    col[k] = pivot;
    for (let i = k + 1; i < d; i++) col[i] = w[i * d + k]! / pivot;
    lt.set(col.subarray(k), k * d + k);
    // Trailing update of the lower triangle: W[i, j] -= l_i l_j for k < j ≤ i.
    for (let i = k + 1; i < d; i++) {
      const li = col[i]!;
      if (li === 0) continue;
      const row = i * d;
      for (let j = k + 1; j <= i; j++) w[row + j]! -= li * col[j]!;
    }
    r++;
  }
  return { lt: lt.subarray(0, r * d), perm, rank: r };
}

/** Swaps index k and p of the lower-triangle-stored W (k < p), of perm, and of the rows of Lᵀ found so far. */
function swapSymmetric(w: Float64Array, d: number, k: number, p: number, perm: Int32Array, lt: Float64Array, r: number): void {
  const at = (i: number, j: number): number => (i >= j ? i * d + j : j * d + i);
  for (let j = 0; j < d; j++) {
    if (j === k || j === p) continue;
    const x = w[at(k, j)]!;
    w[at(k, j)] = w[at(p, j)]!;
    w[at(p, j)] = x;
  }
  const t = w[k * d + k]!;
  w[k * d + k] = w[p * d + p]!;
  w[p * d + p] = t;
  const q = perm[k]!;
  perm[k] = perm[p]!;
  perm[p] = q;
  for (let row = 0; row < r; row++) {
    const x = lt[row * d + k]!;
    lt[row * d + k] = lt[row * d + p]!;
    lt[row * d + p] = x;
  }
}

/** Eigenvalues of a symmetric [n, n] (only the lower triangle is read; `a` is overwritten). */
export function symmetricEigenvalues(a: Float64Array, n: number): Float64Array {
  const diag = new Float64Array(n);
  const off = new Float64Array(n); // off[i] couples i and i + 1
  const v = new Float64Array(n);
  const p = new Float64Array(n);
  for (let k = 0; k < n - 2; k++) {
    // Householder reflector H = I − β v vᵀ zeroing A[k+2.., k], v over indices k+1..n−1.
    const m = n - k - 1;
    let norm2 = 0;
    for (let i = k + 1; i < n; i++) norm2 += a[i * n + k]! ** 2;
    const x0 = a[(k + 1) * n + k]!;
    const alpha = x0 >= 0 ? -Math.sqrt(norm2) : Math.sqrt(norm2);
    diag[k] = a[k * n + k]!;
    off[k] = alpha;
    const vnorm2 = norm2 - x0 * x0 + (x0 - alpha) ** 2;
    if (vnorm2 === 0) {
      off[k] = x0;
      continue;
    }
    for (let i = 0; i < m; i++) v[i] = a[(k + 1 + i) * n + k]!;
    v[0] = x0 - alpha;
    const beta = 2 / vnorm2;
    // p = β A v on the trailing block, from its lower triangle: row i gives p_i (j ≤ i) and adds to p_j (j < i).
    p.fill(0, 0, m);
    for (let i = 0; i < m; i++) {
      const row = (k + 1 + i) * n + k + 1;
      const vi = v[i]!;
      let s = 0;
      for (let j = 0; j < i; j++) {
        const aij = a[row + j]!;
        s += aij * v[j]!;
        p[j]! += aij * vi;
      }
      p[i]! += s + a[row + i]! * vi;
    }
    let vp = 0;
    for (let i = 0; i < m; i++) {
      p[i]! *= beta;
      vp += v[i]! * p[i]!;
    }
    // w = p − (β vᵀp / 2) v; A ← A − v wᵀ − w vᵀ (lower triangle).
    const kk = (beta * vp) / 2;
    for (let i = 0; i < m; i++) p[i]! -= kk * v[i]!;
    for (let i = 0; i < m; i++) {
      const row = (k + 1 + i) * n + k + 1;
      const vi = v[i]!;
      const wi = p[i]!;
      for (let j = 0; j <= i; j++) a[row + j]! -= vi * p[j]! + wi * v[j]!;
    }
  }
  if (n >= 2) {
    diag[n - 2] = a[(n - 2) * n + n - 2]!;
    off[n - 2] = a[(n - 1) * n + n - 2]!;
  }
  if (n >= 1) diag[n - 1] = a[(n - 1) * n + n - 1]!;
  return tridiagonalEigenvalues(diag, off);
}

/** Implicit QL with Wilkinson shifts on the tridiagonal (diag, off); off[n−1] is unused. Overwrites diag. */
function tridiagonalEigenvalues(d: Float64Array, e: Float64Array): Float64Array {
  const n = d.length;
  e[n - 1] = 0;
  for (let l = 0; l < n; l++) {
    for (let iter = 0; ; iter++) {
      let m = l;
      for (; m < n - 1; m++) {
        const dd = Math.abs(d[m]!) + Math.abs(d[m + 1]!);
        if (Math.abs(e[m]!) <= Number.EPSILON * dd) break;
      }
      if (m === l) break;
      if (iter === 60) throw new Error('symmetricEigenvalues: the QL iteration did not converge');
      let g = (d[l + 1]! - d[l]!) / (2 * e[l]!);
      let r = Math.hypot(g, 1);
      g = d[m]! - d[l]! + e[l]! / (g + (g >= 0 ? r : -r));
      let s = 1;
      let c = 1;
      let p = 0;
      let i = m - 1;
      for (; i >= l; i--) {
        const f = s * e[i]!;
        const b = c * e[i]!;
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) {
          d[i + 1]! -= p;
          e[m] = 0;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1]! - p;
        r = (d[i]! - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
      }
      if (r === 0 && i >= l) continue;
      d[l]! -= p;
      e[l] = g;
      e[m] = 0;
    }
  }
  return d;
}

/** Tr (A B)^{1/2} for symmetric PSD A, B [d, d] (eigenvalues below 0 from rounding count as 0). */
export function traceSqrtProduct(a: ArrayLike<number>, b: ArrayLike<number>, d: number): number {
  const { lt, perm, rank: r } = pivotedCholesky(a, d);
  if (r === 0) return 0;
  // S = Pᵀ B P, then Cᵀ[k, i] = Σ_j L[j, k] S[i, j] = dot(S row i, Lᵀ row k) from index k.
  const s = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    const src = perm[i]! * d;
    for (let j = 0; j < d; j++) s[i * d + j] = b[src + perm[j]!]!;
  }
  const ct = new Float64Array(r * d);
  for (let k0 = 0; k0 < r; k0 += 4) {
    const k1 = Math.min(k0 + 4, r);
    for (let i = 0; i < d; i++) dots4(s, i * d, lt, k0, k1, d, ct, k0 * d + i, d);
  }
  // M = Lᵀ S L [r, r]: M[l, k] = Σ_i L[i, k] C[i, l] = dot(Lᵀ row k, Cᵀ row l) (lower triangle, k ≤ l).
  const m = new Float64Array(r * r);
  const full = new Float64Array(4);
  for (let k0 = 0; k0 < r; k0 += 4) {
    const k1 = Math.min(k0 + 4, r);
    for (let l = k0; l < r; l++) {
      dots4(ct, l * d, lt, k0, k1, d, full, 0, 1);
      for (let k = k0; k < k1 && k <= l; k++) m[l * r + k] = full[k - k0]!;
    }
  }
  return symmetricEigenvalues(m, r).reduce((acc, x) => acc + Math.sqrt(Math.max(x, 0)), 0);
}

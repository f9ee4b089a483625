import assert from 'node:assert/strict';
import test from 'node:test';
import { sortedEigen, symmetricEigen } from '../../src/nn/linalg.js';

// [[2, 1], [1, 2]] = Q diag(3, 1) Qᵀ with Q's columns (1, 1)/√2 and (1, −1)/√2.
void test('Jacobi finds the known eigenpairs of [[2, 1], [1, 2]]', () => {
  const { values, vectors } = sortedEigen([2, 1, 1, 2], 2);
  assert.ok(Math.abs(values[0]! - 3) < 1e-12 && Math.abs(values[1]! - 1) < 1e-12);
  const r = Math.SQRT1_2;
  assert.ok(Math.abs(Math.abs(vectors[0]![0]!) - r) < 1e-12 && Math.abs(vectors[0]![0]! - vectors[0]![1]!) < 1e-12);
  assert.ok(Math.abs(vectors[1]![0]! + vectors[1]![1]!) < 1e-12);
});

// A = Q diag(5, 2, −1) Qᵀ with Q a rotation built from two Givens rotations: the solver must
// return λ = 5, 2, −1 and eigenvectors ±Q's columns.
void test('Jacobi recovers a 3×3 matrix built from a known Q and spectrum', () => {
  const c1 = Math.cos(0.3), s1 = Math.sin(0.3), c2 = Math.cos(1.1), s2 = Math.sin(1.1);
  const g1 = [c1, -s1, 0, s1, c1, 0, 0, 0, 1];
  const g2 = [1, 0, 0, 0, c2, -s2, 0, s2, c2];
  const mul = (a: number[], b: number[]): number[] => Array.from({ length: 9 }, (_, k) => [0, 1, 2].reduce((s, j) => s + a[Math.floor(k / 3) * 3 + j]! * b[j * 3 + (k % 3)]!, 0));
  const q = mul(g1, g2);
  const lam = [5, 2, -1];
  const a = Array.from({ length: 9 }, (_, k) => [0, 1, 2].reduce((s, j) => s + q[Math.floor(k / 3) * 3 + j]! * lam[j]! * q[(k % 3) * 3 + j]!, 0));
  const { values, vectors } = sortedEigen(a, 3);
  values.forEach((v, i) => assert.ok(Math.abs(v - lam[i]!) < 1e-10, `λ${i} = ${v}`));
  vectors.forEach((v, j) => {
    const dot = [0, 1, 2].reduce((s, r) => s + v[r]! * q[r * 3 + j]!, 0);
    assert.ok(Math.abs(Math.abs(dot) - 1) < 1e-10, `eigenvector ${j} · Q[:, ${j}] = ${dot}`);
  });
  const raw = symmetricEigen(a, 3);
  assert.equal(raw.vectors.length, 9);
});

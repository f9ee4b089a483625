// FID plumbing: the Jacobi eigensolver, closed forms of the Fréchet distance, and the feature files.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Field, FixedSizeList, Float32, Schema, Table, RecordBatch, Struct, makeData, tableToIPC } from 'apache-arrow';
import { writeSafetensors } from '../../src/checkpoint/safetensors.js';
import { Rng } from '../../src/nn/rng.js';
import { featureStats, fidFromFiles, frechetDistance } from '../../src/eval/fid.js';
import { traceSqrtProduct } from '../../src/eval/frechet.js';
import { symmetricEigen } from '../../src/nn/linalg.js';
import { gaussian } from '../../src/models/diffusion.js';
import { tmpDir } from '../helpers.js';

function features(n: number, d: number, seed: number): Float64Array {
  // Correlated features: x = z L with a random mixing matrix.
  const rng = Rng.from(seed);
  const z = gaussian(rng, n * d);
  const l = gaussian(rng, d * d);
  const out = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) for (let k = 0; k < d; k++) out[i * d + j]! += z[i * d + k]! * l[k * d + j]!;
  return out;
}

void test('Jacobi reconstructs a symmetric matrix from its eigenpairs', () => {
  const d = 12;
  const x = features(40, d, 1);
  const { cov } = featureStats(x, 40, d);
  const { values, vectors } = symmetricEigen(cov, d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += vectors[i * d + k]! * values[k]! * vectors[j * d + k]!;
      assert.ok(Math.abs(s - cov[i * d + j]!) < 1e-9 * Math.max(1, Math.abs(cov[i * d + j]!)));
    }
  }
});

void test('Tr (AB)^½ equals the 2×2 closed form √(tr AB + 2√(det A det B))', () => {
  const a = Float64Array.from([2, 0.7, 0.7, 1]);
  const b = Float64Array.from([0.5, -0.3, -0.3, 3]);
  const ab = [a[0]! * b[0]! + a[1]! * b[2]!, 0, 0, a[2]! * b[1]! + a[3]! * b[3]!];
  const det = (m: Float64Array): number => m[0]! * m[3]! - m[1]! * m[2]!;
  const want = Math.sqrt(ab[0]! + ab[3]! + 2 * Math.sqrt(det(a) * det(b)));
  assert.ok(Math.abs(traceSqrtProduct(a, b, 2) - want) < 1e-12);
});

void test('FID of identical sets is ~0; of shifted and scaled sets, the closed form', () => {
  const n = 300;
  const d = 16;
  const x = features(n, d, 2);
  const sx = featureStats(x, n, d);
  assert.ok(Math.abs(frechetDistance(sx, sx)) < 1e-8);
  const delta = Float64Array.from({ length: d }, (_, j) => 0.1 * j - 0.5);
  const shifted = x.map((v, i) => v + delta[i % d]!);
  const dd = delta.reduce((s, v) => s + v * v, 0);
  assert.ok(Math.abs(frechetDistance(sx, featureStats(shifted, n, d)) - dd) < 1e-8 * Math.max(1, dd));
  // fake = 2x + δ: Σ_f = 4Σ, so FID = ‖μ + δ‖² + Tr Σ + 4 Tr Σ − 2·2 Tr Σ = ‖μ + δ‖² + Tr Σ.
  const scaled = x.map((v, i) => 2 * v + delta[i % d]!);
  let want = 0;
  for (let j = 0; j < d; j++) want += (sx.mean[j]! + delta[j]!) ** 2 + sx.cov[j * d + j]!;
  assert.ok(Math.abs(frechetDistance(sx, featureStats(scaled, n, d)) - want) < 1e-7 * want);
});

void test('feature files: safetensors and Arrow give the same FID; errors name the problem', () => {
  const dir = tmpDir('fid');
  const n = 50;
  const d = 6;
  const real = Float32Array.from(features(n, d, 3));
  const fake = Float32Array.from(features(n, d, 4));
  writeSafetensors(path.join(dir, 'real.safetensors'), { features: { dtype: 'F32', shape: [n, d], data: real } });
  writeSafetensors(path.join(dir, 'fake.safetensors'), { features: { dtype: 'F32', shape: [n, d], data: fake } });
  const type = new FixedSizeList(d, new Field('item', new Float32(), false));
  const schema = new Schema([new Field('features', type, false)]);
  const child = makeData({ type: new Float32(), length: n * d, nullCount: 0, data: fake });
  const col = makeData({ type, length: n, nullCount: 0, child });
  const batch = new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: n, nullCount: 0, children: [col] }));
  fs.writeFileSync(path.join(dir, 'fake.arrow'), tableToIPC(new Table(batch), 'file'));
  const a = fidFromFiles(path.join(dir, 'real.safetensors'), path.join(dir, 'fake.safetensors'));
  const b = fidFromFiles(path.join(dir, 'real.safetensors'), path.join(dir, 'fake.arrow'));
  assert.equal(a.n_real, n);
  assert.equal(a.dim, d);
  assert.ok(a.fid > 0 && Math.abs(a.fid - b.fid) < 1e-9 * a.fid);
  writeSafetensors(path.join(dir, 'bad.safetensors'), { feats: { dtype: 'F32', shape: [n, d], data: fake } });
  assert.throws(() => fidFromFiles(path.join(dir, 'real.safetensors'), path.join(dir, 'bad.safetensors')), /no tensor 'features'/);
  assert.throws(() => fidFromFiles(path.join(dir, 'real.safetensors'), path.join(dir, 'x.npz')), /no such statistics file/);
});

void test('onelora eval fid --json prints the result on the last line', async () => {
  const { Command } = await import('commander');
  const { registerEval } = await import('../../src/cli/commands/eval.js');
  const dir = tmpDir('fid');
  const x = Float32Array.from(features(20, 3, 5));
  writeSafetensors(path.join(dir, 'r.safetensors'), { features: { dtype: 'F32', shape: [20, 3], data: x } });
  const program = new Command('onelora').exitOverride();
  registerEval(program);
  let printed = '';
  const write = process.stdout.write;
  process.stdout.write = ((s: string) => ((printed += s), true)) as typeof process.stdout.write;
  try {
    await program.parseAsync(['node', 'onelora', 'eval', 'fid', '--real', path.join(dir, 'r.safetensors'), '--fake', path.join(dir, 'r.safetensors'), '--json']);
  } finally {
    process.stdout.write = write;
  }
  const r = JSON.parse(printed.trim().split('\n').at(-1)!) as { fid: number; n_real: number; dim: number };
  assert.ok(Math.abs(r.fid) < 1e-9);
  assert.equal(r.n_real, 20);
  assert.equal(r.dim, 3);
});

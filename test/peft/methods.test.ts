// Method-specific maths: gradients against finite differences and against plain-autodiff
// references, DoRA's norm axis, VeRA's shared slicing, MoRA 1/6 compression against a direct
// transcription of github.com/kongds/MoRA and their merged ΔW against the unmerged forward.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { initBackend, tf } from '../../src/backend/select.js';
import { LinearModule } from '../../src/nn/modules.js';
import { DoraAdapter } from '../../src/peft/dora.js';
import { uniformArray } from '../../src/peft/init.js';
import { LoraAdapter } from '../../src/peft/lora.js';
import { effectiveWeight } from '../../src/peft/merge.js';
import { MoraAdapter, moraRank } from '../../src/peft/mora.js';
import { oneLoraLinear } from '../../src/peft/onelora.js';
import { parseMethodSpec } from '../../src/peft/spec.js';
import type { BuildContext } from '../../src/peft/types.js';
import { VERA_A_KEY, VERA_B_KEY, VeraAdapter } from '../../src/peft/vera.js';
import { maxRelErr } from './fake-model.js';

await initBackend('wasm');
type T2 = tf.Tensor2D;

let seedCounter = 100;
function rand(shape: number[], bound = 1): tf.Tensor {
  return tf.tensor(uniformArray(shape.reduce((a, b) => a * b, 1), bound, seedCounter++, 'm'), shape);
}
function layer(k: number, d: number, bias: boolean, path = 'l'): LinearModule {
  return new LinearModule(path, 'other', tf.variable(rand([k, d]) as T2), bias ? tf.variable(rand([d]) as tf.Tensor1D) : null);
}
function ctx(spec: string, layers: LinearModule[], seed = 0): BuildContext {
  return { seed, term: parseMethodSpec(spec).terms[0]!, layers, shared: new Map() };
}

/** Central finite differences of f at a few entries of v (float32: loose tolerance). */
function fdCheck(f: () => tf.Scalar, v: tf.Variable, grad: tf.Tensor, label: string): void {
  const g = grad.dataSync();
  const n = v.size;
  const eps = 1e-2;
  for (const idx of [0, Math.floor(n / 2), n - 1]) {
    const base = v.dataSync().slice();
    const at = (delta: number): number => {
      const p = base.slice();
      p[idx]! += delta;
      v.assign(tf.tensor(p, v.shape));
      return tf.tidy(() => f().dataSync()[0]!);
    };
    const fd = (at(eps) - at(-eps)) / (2 * eps);
    v.assign(tf.tensor(base, v.shape));
    assert.ok(Math.abs(fd - g[idx]!) <= 2e-2 * Math.max(1, Math.abs(fd)), `${label}[${idx}]: fd ${fd} vs grad ${g[idx]}`);
  }
}

void test('1LoRA op: value and gradients equal the plain-autodiff formula and finite differences', () => {
  for (const random of [false, true]) {
    const [n, k, d] = [7, 5, 3];
    const w = rand([k, d]) as T2;
    const bias = rand([d]) as tf.Tensor1D;
    const c = random ? (rand([k]) as tf.Tensor1D) : null;
    const x = tf.variable(rand([n, k]) as T2);
    const b = tf.variable(rand([d]) as tf.Tensor1D);
    const beta = tf.variable(bias);
    const gy = rand([n, d]);
    const ours = (): tf.Scalar => tf.sum(tf.mul(oneLoraLinear(x, w, b, { bias: beta, trainBias: true, c }), gy));
    const comp = c ? tf.reshape(c, [k, 1]) : tf.ones([k, 1]);
    // y = x W + β + (x c) bᵀ with tf's own gradients
    const ref = (): tf.Scalar => tf.sum(tf.mul(tf.add(tf.add(tf.matMul(x, w), beta), tf.matMul(tf.matMul(x, comp as T2), tf.reshape(b, [1, d]))), gy));
    const a = tf.variableGrads(ours, [x, b, beta]);
    const r = tf.variableGrads(ref, [x, b, beta]);
    assert.ok(Math.abs(a.value.dataSync()[0]! - r.value.dataSync()[0]!) < 1e-4);
    for (const v of [x, b, beta]) assert.ok(maxRelErr(a.grads[v.name]!, r.grads[v.name]!) < 1e-5, `${random ? 'random' : 'sum'} d${v.name}`);
    fdCheck(ours, b, a.grads[b.name]!, 'db');
    fdCheck(ours, x, a.grads[x.name]!, 'dx');
  }
});

void test('LoRA gradients against finite differences; rsLoRA scale α/√r', () => {
  const l = layer(6, 4, true);
  const ad = new LoraAdapter(l, ctx('lora:r=2,alpha=3,rslora=true', [l]));
  assert.ok(Math.abs(ad.scale - 3 / Math.sqrt(2)) < 1e-12);
  assert.equal(new LoraAdapter(l, ctx('lora:r=4', [l])).scale, 2, 'default α = 2r');
  ad.B.assign(rand([2, 4]) as T2);
  const x = rand([5, 6]) as T2;
  const gy = rand([5, 4]);
  const f = (): tf.Scalar => tf.sum(tf.mul(ad.forward(l, x), gy));
  const { grads } = tf.variableGrads(f, [ad.A, ad.B]);
  fdCheck(f, ad.A, grads[ad.A.name]!, 'dA');
  fdCheck(f, ad.B, grads[ad.B.name]!, 'dB');
  // A ~ U(±1/√k) as PEFT's kaiming_uniform_(a=√5)
  assert.ok(tf.max(tf.abs(ad.A)).dataSync()[0]! <= 1 / Math.sqrt(6));
});

void test('DoRA: m is the norm of W0 per output feature (over the input axis); gradients with the norm detached', () => {
  const l = layer(6, 4, true);
  const ad = new DoraAdapter(l, ctx('dora:r=2', [l]));
  // HF layout W [out, in]: PEFT takes torch.linalg.norm(W, dim=1) — one norm per output row.
  const hf = tf.transpose(l.weight).arraySync() as number[][];
  const want = hf.map((row) => Math.sqrt(row.reduce((a, v) => a + v * v, 0)));
  assert.equal(ad.m.shape[0], 4);
  assert.ok(maxRelErr(ad.m, tf.tensor1d(want)) < 1e-6);
  ad.B.assign(rand([2, 4]) as T2);
  ad.m.assign(rand([4]) as tf.Tensor1D);
  const x = rand([5, 6]) as T2;
  const gy = rand([5, 4]);
  // Reference: PEFT's formula with ‖W0 + sBA‖ computed outside the tape (a constant).
  const norm = tf.tidy(() => tf.norm(tf.add(l.weight, ad.delta()), 'euclidean', 0));
  assert.ok(maxRelErr(ad.weightNorm(l), norm) < 1e-5, 'norm without forming W0 + sBA');
  const ref = (): tf.Scalar => tf.sum(tf.mul(tf.add(tf.mul(tf.add(tf.matMul(x, l.weight), tf.mul(tf.matMul(tf.matMul(x, ad.A), ad.B), ad.scale)), tf.div(ad.m, norm)), l.bias!), gy));
  const ours = (): tf.Scalar => tf.sum(tf.mul(ad.forward(l, x), gy));
  const a = tf.variableGrads(ours, [ad.A, ad.B, ad.m]);
  const r = tf.variableGrads(ref, [ad.A, ad.B, ad.m]);
  assert.ok(Math.abs(a.value.dataSync()[0]! - r.value.dataSync()[0]!) < 1e-4);
  for (const v of [ad.A, ad.B, ad.m]) assert.ok(maxRelErr(a.grads[v.name]!, r.grads[v.name]!) < 1e-4, `d${v.name}`);
  fdCheck(ours, ad.m, a.grads[ad.m.name]!, 'dm');
});

void test('DoRA on a weight with an all-zero output column (adaLN-Zero): finite, the identity at init, trains, merges and unmerges', () => {
  const l = layer(6, 4, true);
  l.weight.assign(tf.tidy(() => tf.mul(l.weight, tf.tensor1d([1, 0, 1, 1])))); // output feature 1 is all zeros
  const ad = new DoraAdapter(l, ctx('dora:r=2', [l]));
  l.adapter = ad;
  const x = rand([5, 6]) as T2;
  assert.equal(ad.m.dataSync()[1], 0);
  const y0 = l.forward(x);
  assert.ok(maxRelErr(y0, l.base(x)) < 1e-6, 'identity at init');
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(l.forward(x))), [ad.A, ad.B, ad.m]);
  assert.ok(Number.isFinite(value.dataSync()[0]!));
  for (const g of Object.values(grads)) assert.ok(g.dataSync().every(Number.isFinite), 'finite gradients');
  ad.B.assign(rand([2, 4]) as T2);
  const w0 = l.weight.clone();
  const before = l.forward(x);
  ad.merge(l);
  assert.ok(maxRelErr(tf.add(tf.matMul(x, l.weight), l.bias!), before) < 1e-5, "merged = adapted");
  ad.unmerge(l);
  assert.ok(maxRelErr(l.weight, w0) < 1e-6, 'unmerge restores W0');
});

void test('VeRA: one shared A [r, k_max], B [d_max, r], sliced per layer; ΔW = Λ_b B[:d] Λ_d A[:, :k]', () => {
  const l1 = layer(6, 4, false, 'a');
  const l2 = layer(3, 9, true, 'b');
  const c = ctx('vera:r=3', [l1, l2], 5);
  const v1 = new VeraAdapter(l1, c);
  const v2 = new VeraAdapter(l2, c);
  assert.equal(c.shared.size, 2);
  const A = tf.transpose(c.shared.get(VERA_A_KEY)!).arraySync() as number[][]; // [r, k_max]
  const B = tf.transpose(c.shared.get(VERA_B_KEY)!).arraySync() as number[][]; // [d_max, r]
  assert.deepEqual([A.length, A[0]!.length, B.length, B[0]!.length], [3, 6, 9, 3]);
  assert.ok(A.flat().every((v) => Math.abs(v) <= Math.sqrt(6 / 6)) && B.flat().every((v) => Math.abs(v) <= Math.sqrt(6 / 3)));
  assert.deepEqual(Array.from(v1.lambdaD.dataSync()).map((v) => Math.round(v * 10) / 10), [0.1, 0.1, 0.1]);
  for (const [ad, l] of [[v1, l1], [v2, l2]] as const) {
    ad.lambdaB.assign(rand([l.outFeatures]) as tf.Tensor1D);
    ad.lambdaD.assign(rand([3]) as tf.Tensor1D);
    l.adapter = ad;
    const lb = ad.lambdaB.dataSync();
    const ld = ad.lambdaD.dataSync();
    // Expected ΔW in kernel layout [k, d]: ΔW_k[i, j] = λ_b[j] Σ_r B[j][r] λ_d[r] A[r][i]
    const want = new Float32Array(l.inFeatures * l.outFeatures);
    for (let i = 0; i < l.inFeatures; i++) {
      for (let j = 0; j < l.outFeatures; j++) {
        let s = 0;
        for (let r = 0; r < 3; r++) s += B[j]![r]! * ld[r]! * A[r]![i]!;
        want[i * l.outFeatures + j] = lb[j]! * s;
      }
    }
    const eff = effectiveWeight(l);
    assert.ok(maxRelErr(tf.sub(eff.weight, l.weight), tf.tensor2d(want, [l.inFeatures, l.outFeatures])) < 1e-5, `slice of ${l.path}`);
  }
});

/** Direct transcription of kongds/MoRA `_apply_mora` + decompression for one input row. */
function moraRef(x: number[], M: number[][], r: number, d: number, type: 1 | 6): number[] {
  const k = x.length;
  const L = Math.ceil(k / r) * r;
  const xt = (i: number): number => x[i % k]!;
  const mv = (v: number[]): number[] => M.map((row) => row.reduce((a, m, j) => a + m * v[j]!, 0));
  if (type === 1) {
    const c = Array.from({ length: r }, (_, j) => Array.from({ length: L / r }, (_, b) => xt(b * r + j)).reduce((a, v) => a + v, 0));
    const z = mv(c);
    return Array.from({ length: d }, (_, i) => z[i % r]!);
  }
  const h = r / 2;
  const flat: number[] = [];
  for (let b = 0; b < L / r; b++) {
    const blk = Array.from({ length: r }, (_, m) => xt(b * r + m));
    const rot = blk.map((_, m) => (m < h ? -blk[m + h]! : blk[m - h]!));
    const th = blk.map((_, m) => b / Math.pow(10000, (2 * (m % h)) / r));
    flat.push(...mv(blk.map((v, m) => v * Math.cos(th[m]!) + rot[m]! * Math.sin(th[m]!))));
  }
  return Array.from({ length: d }, (_, i) => flat[i % L]!);
}

void test('MoRA 1 and 6: forward = the MoRA reference; merged ΔW (built from the rule) = ΔW of the forward', async () => {
  // (k, d, r̂): padding, wrap-around with p > k, truncation, tiling beyond k + p
  const shapes: [number, number, number][] = [[6, 4, 2], [10, 6, 4], [5, 3, 2], [2, 9, 6], [7, 16, 4]];
  for (const type of [1, 6] as const) {
    for (const [k, d, r] of shapes) {
      const l = layer(k, d, true);
      const ad = new MoraAdapter(l, parseMethodSpec(`mora${type}:r=${r}`).terms[0]!, type);
      const M = rand([r, r]).arraySync() as number[][];
      ad.M.assign(tf.transpose(tf.tensor2d(M)));
      l.adapter = ad;
      const x = rand([3, k]) as T2;
      const delta = tf.sub(l.forward(x), l.base(x));
      const ref = (x.arraySync() as number[][]).map((row) => moraRef(row, M, r, d, type));
      assert.ok(maxRelErr(delta, tf.tensor2d(ref)) < 1e-5, `mora${type} k=${k} d=${d} r=${r} forward`);
      const dw = tf.tensor2d(ad.deltaWeight(l, (await ad.M.data()) as Float32Array), [k, d]);
      assert.ok(maxRelErr(dw, tf.sub(effectiveWeight(l).weight, l.weight)) < 1e-5, `mora${type} k=${k} d=${d} r=${r} ΔW`);
    }
  }
  const spec = { path: 'p', inFeatures: 11008, outFeatures: 11008, hasBias: false, role: 'other' as const };
  assert.equal(moraRank(spec, {} as never, 1), 105);
  assert.equal(moraRank(spec, {} as never, 6), 104);
});

void test('MoRA 1 and 6: gradients of x and M (matMul form, recomputed backward) = central finite differences', () => {
  // The delta is bilinear in (x, M): a central difference is exact up to float rounding.
  for (const type of [1, 6] as const) {
    for (const [k, d, r] of [[10, 6, 4], [7, 16, 4], [2, 9, 6]] as [number, number, number][]) {
      const l = layer(k, d, false);
      const ad = new MoraAdapter(l, parseMethodSpec(`mora${type}:r=${r}`).terms[0]!, type);
      ad.M.assign(rand([r, r]) as T2);
      l.adapter = ad;
      const x = rand([3, k]) as T2;
      const R = rand([3, d]) as T2;
      const loss = (xi: T2): tf.Scalar => tf.sum(tf.mul(l.forward(xi), R));
      const { grads } = tf.variableGrads(() => loss(x), [ad.M]);
      const gx = tf.grad((xi: tf.Tensor) => loss(xi as T2))(x);
      const fd = (f: (e: number) => number, eps = 1e-2): number => (f(eps) - f(-eps)) / (2 * eps);
      const m0 = ad.M.arraySync();
      for (const [i, j] of [[0, 0], [r - 1, 1], [1, r - 1]]) {
        const want = fd((e) => {
          const m = m0.map((row) => row.slice());
          m[i]![j]! += e;
          ad.M.assign(tf.tensor2d(m));
          return loss(x).dataSync()[0]!;
        });
        ad.M.assign(tf.tensor2d(m0));
        const got = grads[ad.M.name]!.arraySync() as number[][];
        assert.ok(Math.abs(got[i]![j]! - want) <= 1e-3 * (1 + Math.abs(want)), `mora${type} k=${k} d=${d} dM[${i},${j}] ${got[i]![j]} vs ${want}`);
      }
      const x0 = x.arraySync();
      for (const [i, j] of [[0, 0], [2, k - 1]]) {
        const want = fd((e) => {
          const xe = x0.map((row) => row.slice());
          xe[i]![j]! += e;
          return loss(tf.tensor2d(xe)).dataSync()[0]!;
        });
        const got = (gx.arraySync() as number[][])[i]![j]!;
        assert.ok(Math.abs(got - want) <= 1e-3 * (1 + Math.abs(want)), `mora${type} k=${k} d=${d} dx[${i},${j}] ${got} vs ${want}`);
      }
    }
  }
});

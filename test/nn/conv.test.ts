// conv2d and groupNorm against PyTorch (scripts/make-nn-fixtures.py, float64 references from
// torch.nn.functional): forward and the gradients of sum(y ⊙ r) for the input, weight and bias,
// on every backend here. The fixture is in torch layout (NCHW, OIHW), so the layout conversions
// are checked on the way.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import { tf } from '../../src/backend/tf.js';
import { conv2d, convWeightFromTorch, convWeightToTorch, groupNorm, nchwToNhwc, nhwcToNchw, type Padding2d } from '../../src/nn/conv.js';
import { Conv2dModule, GroupNormModule } from '../../src/nn/modules.js';

interface Case {
  name: string;
  op: 'conv2d' | 'group_norm';
  x_shape: [number, number, number, number];
  x: number[];
  w: number[];
  w_shape?: number[];
  b?: number[];
  y: number[];
  y_shape?: [number, number, number, number];
  r: number[];
  dx: number[];
  dw: number[];
  db?: number[];
  stride?: number;
  padding?: Padding2d;
  dilation?: number;
  groups: number;
  eps?: number;
}

const fixture = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, '..', 'fixtures', 'nn', 'conv.json'), 'utf8')) as { cases: Case[] };
const TOL = 1e-4;

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const nchw = (c: Case, values: number[]): tf.Tensor4D => tf.tensor4d(values, c.x_shape);

function run(c: Case): { y: tf.Tensor4D; dx: tf.Tensor4D; dw: tf.Tensor; db: tf.Tensor | null } {
  const x = nchwToNhwc(nchw(c, c.x));
  const w = c.op === 'conv2d' ? convWeightFromTorch(Float32Array.from(c.w), c.w_shape!) : tf.tensor1d(c.w);
  const b = c.b ? tf.tensor1d(c.b) : null;
  const f = (xi: tf.Tensor, wi: tf.Tensor, bi?: tf.Tensor): tf.Tensor4D =>
    c.op === 'conv2d'
      ? conv2d(xi as tf.Tensor4D, wi as tf.Tensor4D, { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups, bias: (bi ?? null) as tf.Tensor1D | null })
      : groupNorm(xi as tf.Tensor4D, c.groups, wi as tf.Tensor1D, (bi ?? null) as tf.Tensor1D | null, c.eps!);
  const y = nhwcToNchw(f(x, w, b ?? undefined));
  const r = tf.tensor4d(c.r, y.shape); // the upstream gradient, NCHW as stored
  const grads = tf.grads((...args: tf.Tensor[]) => tf.sum(tf.mul(nhwcToNchw(f(args[0]!, args[1]!, args[2])), r)));
  const g = grads(b ? [x, w, b] : [x, w]);
  return { y, dx: nhwcToNchw(g[0] as tf.Tensor4D), dw: g[1]!, db: g[2] ?? null };
}

for (const backend of ['cpu', 'wasm']) {
  void test(`${backend}: conv2d and groupNorm match torch (forward, d/dx, d/dw, d/db) within ${TOL}`, async (t) => {
    await tf.setBackend(backend);
    await tf.ready();
    for (const c of fixture.cases) {
      await t.test(c.name, () => {
        tf.tidy(() => {
          const { y, dx, dw, db } = run(c);
          if (c.y_shape) assert.deepEqual(y.shape, c.y_shape);
          assert.ok(maxDiff(y.dataSync(), c.y) < TOL, `y: ${maxDiff(y.dataSync(), c.y)}`);
          assert.ok(maxDiff(dx.dataSync(), c.dx) < TOL, `dx: ${maxDiff(dx.dataSync(), c.dx)}`);
          // The weight gradient back in torch layout (OIHW for convs).
          const dwTorch = c.op === 'conv2d' ? convWeightToTorch(dw as tf.Tensor4D).data : dw.dataSync();
          assert.ok(maxDiff(dwTorch, c.dw) < TOL, `dw: ${maxDiff(dwTorch, c.dw)}`);
          if (c.db) assert.ok(maxDiff(db!.dataSync(), c.db) < TOL, `db: ${maxDiff(db!.dataSync(), c.db)}`);
        });
      });
    }
  });
}

void test('Conv2dModule and GroupNormModule run the ops, a frozen conv weight still passing dx', async () => {
  await tf.setBackend('cpu');
  const c = fixture.cases.find((k) => k.name === '3x3 same')!;
  tf.tidy(() => {
    const w = tf.variable(convWeightFromTorch(Float32Array.from(c.w), c.w_shape!), false);
    const conv = new Conv2dModule('head.conv', w, tf.variable(tf.tensor1d(c.b!), false), { padding: 1 });
    assert.equal(conv.inChannels, 3);
    assert.equal(conv.outChannels, 4);
    const x = nchwToNhwc(nchw(c, c.x));
    assert.ok(maxDiff(nhwcToNchw(conv.forward(x)).dataSync(), c.y) < TOL);
    const dx = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(nhwcToNchw(conv.forward(xi as tf.Tensor4D)), tf.tensor4d(c.r, [2, 4, 6, 5]))))(x);
    assert.ok(maxDiff(nhwcToNchw(dx as tf.Tensor4D).dataSync(), c.dx) < TOL);
    const gn = fixture.cases.find((k) => k.op === 'group_norm')!;
    const norm = new GroupNormModule('norm', tf.variable(tf.tensor1d(gn.w)), tf.variable(tf.tensor1d(gn.b!)), gn.groups, gn.eps!);
    assert.ok(maxDiff(nhwcToNchw(norm.forward(nchwToNhwc(nchw(gn, gn.x)))).dataSync(), gn.y) < TOL);
    w.dispose();
    conv.bias!.dispose();
    norm.weight.dispose();
    norm.bias!.dispose();
  });
});

void test('convWeightFromTorch maps OIHW [o, i, kh, kw] to HWIO [kh, kw, i, o] and back', () => {
  const data = Float32Array.from({ length: 2 * 3 * 2 * 2 }, (_, k) => k);
  const w = convWeightFromTorch(data, [2, 3, 2, 2]);
  assert.deepEqual(w.shape, [2, 2, 3, 2]);
  const hwio = w.arraySync();
  // torch w[o=1, i=2, y=0, x=1] = ((1·3 + 2)·2 + 0)·2 + 1 = 21
  assert.equal(hwio[0]![1]![2]![1], 21);
  assert.deepEqual(Array.from(convWeightToTorch(w).data), Array.from(data));
  w.dispose();
});

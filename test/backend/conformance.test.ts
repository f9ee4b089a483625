// Every custom op and kernel, forward and backward, on cpu, wasm and webgpu: each backend against
// the torch goldens where they exist (conv2d/group norm, the tiny LLaMA's logits) and against the
// cpu backend (every op), within 1e-4; then one training step of each method on each backend, with
// the same loss. Without a WebGPU adapter the webgpu half is skipped with the reason, unless
// ONELORA_REQUIRE_WEBGPU=1 (CI), where that is a failure.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import type { RecordBatch } from 'apache-arrow';
import { initBackend, tf } from '../../src/backend/select.js';
import { bmm, clearTransposeCache, linear, matmul, recomputed, sumRows } from '../../src/backend/linear.js';
import { readAll } from '../../src/backend/read.js';
import { UserError } from '../../src/errors.js';
import { applyRope, clearAttentionCaches } from '../../src/nn/attention.js';
import { conv2d, convWeightFromTorch, groupNorm, nchwToNhwc, nhwcToNchw } from '../../src/nn/conv.js';
import { rmsNorm, swiGlu } from '../../src/nn/ops.js';
import { LlamaModel } from '../../src/models/llama.js';
import { loadModel } from '../../src/models/registry.js';
import { applyMethod } from '../../src/peft/apply.js';
import { oneLoraLinear } from '../../src/peft/onelora.js';
import { TrainEngine } from '../../src/train/engine.js';
import type { Task } from '../../src/train/task.js';

const TOL = 1e-4;
const FIX = path.join(import.meta.dirname, '..', 'fixtures');
const BACKENDS = ['cpu', 'wasm', 'webgpu'] as const;

/** webgpu's availability here: null, or why it cannot run (one line). */
async function webgpuMissing(): Promise<string | null> {
  try {
    await initBackend('webgpu');
    return null;
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    return err.message.split('\n')[0] as string;
  }
}
const missing = await webgpuMissing();
if (missing && process.env.ONELORA_REQUIRE_WEBGPU === '1') {
  test('webgpu is available (ONELORA_REQUIRE_WEBGPU=1)', () => assert.fail(`the webgpu conformance tests did not run: ${missing}`));
}
const available = BACKENDS.filter((b) => b !== 'webgpu' || !missing);

const seeded = (shape: number[], seed: number, scale = 1): tf.Tensor => tf.randomNormal(shape, 0, scale, 'float32', seed);

/** Each op case: tensors (value and gradients) from seeded inputs, read back as arrays. */
type Case = () => tf.Tensor[];

const grad = (f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], seed: number): tf.Tensor[] => {
  const y = f(...inputs);
  const r = seeded(y.shape, seed);
  return [y, ...tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), r)))(inputs)];
};

const CASES: Record<string, Case> = {
  'linear (frozen W)': () => {
    const w = seeded([7, 3], 2) as tf.Tensor2D;
    return grad((x) => linear(x as tf.Tensor2D, w, { bias: seeded([3], 3) as tf.Tensor1D }), [seeded([5, 7], 1)], 4);
  },
  'linear (trainable W, bias)': () =>
    grad((x, w, b) => linear(x as tf.Tensor2D, w as tf.Tensor2D, { bias: b as tf.Tensor1D, trainWeight: true, trainBias: true }), [seeded([6, 4], 5), seeded([4, 5], 6), seeded([5], 7)], 8),
  '1LoRA op (sum and random c)': () => {
    const w = seeded([6, 4], 10) as tf.Tensor2D;
    const c = seeded([6], 11) as tf.Tensor1D;
    return [
      ...grad((x, b) => oneLoraLinear(x as tf.Tensor2D, w, b as tf.Tensor1D), [seeded([5, 6], 12), seeded([4], 13)], 14),
      ...grad((x, b, beta) => oneLoraLinear(x as tf.Tensor2D, w, b as tf.Tensor1D, { c, bias: beta as tf.Tensor1D, trainBias: true }), [seeded([5, 6], 15), seeded([4], 16), seeded([4], 17)], 18),
    ];
  },
  matmul: () => grad((a, b) => matmul(a as tf.Tensor2D, b as tf.Tensor2D), [seeded([3, 4], 20), seeded([4, 2], 21)], 22),
  // 2·64·32·64 multiply-adds per group: above the size where wasm splits into plain matMuls.
  'bmm (small and split sizes)': () => [
    ...grad((a, b) => bmm(a as tf.Tensor3D, b as tf.Tensor3D), [seeded([2, 3, 4], 23), seeded([2, 4, 5], 24)], 25),
    ...grad((a, b) => bmm(a as tf.Tensor3D, b as tf.Tensor3D), [seeded([2, 64, 32], 26), seeded([2, 32, 64], 27)], 28),
  ],
  sumRows: () => grad((g) => sumRows(g as tf.Tensor2D), [seeded([12, 5], 30)], 31),
  'RMSNorm (frozen and trainable weight)': () => {
    const x = seeded([6, 8], 32);
    // A frozen weight lives as long as the model (rmsNorm's gradient reads it, not a saved copy).
    const wFrozen = seeded([8], 33) as tf.Tensor1D;
    const frozen = grad((xi) => rmsNorm(xi as tf.Tensor2D, wFrozen, 1e-5), [x], 34);
    const w = tf.variable(seeded([8], 35), true); // a trainable variable is what makes rmsNorm return dw
    try {
      return [...frozen, ...grad((xi, wi) => rmsNorm(xi as tf.Tensor2D, wi as tf.Tensor1D, 1e-5), [x, w], 36)];
    } finally {
      w.dispose();
    }
  },
  SwiGLU: () => grad((a, u) => swiGlu(a as tf.Tensor2D, u as tf.Tensor2D), [seeded([5, 6], 35), seeded([5, 6], 36)], 37),
  RoPE: () => grad((x) => applyRope(x as tf.Tensor4D, 10000, 3), [seeded([2, 2, 5, 8], 38)], 39),
  recomputed: () => grad((x, w) => recomputed([x, w], (xi, wi) => tf.tanh(matmul(xi as tf.Tensor2D, wi as tf.Tensor2D))), [seeded([4, 5], 40), seeded([5, 3], 41)], 42),
  'conv2d and group norm': () => {
    const x = seeded([2, 6, 5, 4], 43) as tf.Tensor4D; // NHWC
    return [
      ...grad((xi, w, b) => conv2d(xi as tf.Tensor4D, w as tf.Tensor4D, { padding: [1, 1], groups: 2, bias: b as tf.Tensor1D }), [x, seeded([3, 3, 2, 6], 44), seeded([6], 45)], 46),
      ...grad((xi, w, b) => groupNorm(xi as tf.Tensor4D, 2, w as tf.Tensor1D, b as tf.Tensor1D, 1e-5), [x, seeded([4], 47), seeded([4], 48)], 49),
    ];
  },
};

/** max |a − b| / max(1, max |b|): absolute for small values, relative for large ones. */
function scaledDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  let s = 1;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return m / s;
}

async function runCase(c: Case): Promise<Float32Array[]> {
  const ts = tf.tidy(c);
  try {
    return await readAll(ts);
  } finally {
    tf.dispose(ts);
  }
}

// The cpu results, filled by the cpu suite that runs first; the others compare against them.
const reference = new Map<string, Float32Array[]>();

interface ConvCase { name: string; op: 'conv2d' | 'group_norm'; x_shape: [number, number, number, number]; x: number[]; w: number[]; w_shape?: number[]; b?: number[]; y: number[]; r: number[]; dx: number[]; dw: number[]; db?: number[]; stride?: number; padding?: [number, number]; dilation?: number; groups: number; eps?: number }
const convFixture = JSON.parse(fs.readFileSync(path.join(FIX, 'nn', 'conv.json'), 'utf8')) as { cases: ConvCase[] };
const expected = JSON.parse(fs.readFileSync(path.join(FIX, 'models', 'expected.json'), 'utf8')) as Record<string, { input_ids: number[][]; labels: number[][]; logits: number[][][]; loss_sum: number }>;

/** The torch golden of one conv.json case, computed here: [y, dx, dw, db?] in torch layout. */
function convGolden(c: ConvCase): tf.Tensor[] {
  const x = nchwToNhwc(tf.tensor4d(c.x, c.x_shape));
  const w = c.op === 'conv2d' ? convWeightFromTorch(Float32Array.from(c.w), c.w_shape!) : tf.tensor1d(c.w);
  const b = c.b ? tf.tensor1d(c.b) : null;
  const f = (xi: tf.Tensor, wi: tf.Tensor, bi?: tf.Tensor): tf.Tensor =>
    nhwcToNchw(c.op === 'conv2d'
      ? conv2d(xi as tf.Tensor4D, wi as tf.Tensor4D, { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups, bias: (bi ?? null) as tf.Tensor1D | null })
      : groupNorm(xi as tf.Tensor4D, c.groups, wi as tf.Tensor1D, (bi ?? null) as tf.Tensor1D | null, c.eps!));
  const y = f(x, w, b ?? undefined);
  const r = tf.tensor4d(c.r, y.shape as [number, number, number, number]);
  const g = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(a[0]!, a[1]!, a[2]), r)))(b ? [x, w, b] : [x, w]);
  const dw = c.op === 'conv2d' ? tf.transpose(g[1]!, [3, 2, 0, 1]) : g[1]!; // HWIO -> OIHW
  return [y, nhwcToNchw(g[0] as tf.Tensor4D), dw, ...(g[2] ? [g[2]] : [])];
}

/** A causal-LM task over one fixed batch of the tiny LLaMA fixture's reference ids. */
function fixedTask(ids: number[][]): Task<LlamaModel> {
  const [b, t] = [ids.length, ids[0]!.length];
  return {
    name: 'causal-lm', metric: { name: 'loss', lowerIsBetter: true },
    countUnits: () => b * (t - 1),
    lossSum: (model) => tf.tidy(() => model.lossSum(tf.tensor2d(ids.flat(), [b, t], 'int32'), tf.tensor2d(ids.flat(), [b, t], 'int32'))),
    evaluate: () => Promise.resolve({}),
  };
}

const METHODS = ['1lora', 'lora:r=1', 'dora:r=1', 'vera:r=2', 'mora1', 'mora6', 'bitfit', 'norms', 'all'];
/** Per method and backend: the loss before and after one AdamW step. */
const losses = new Map<string, Map<string, [number, number]>>();

async function trainStep(method: string): Promise<[number, number]> {
  const { model } = await loadModel(path.join(FIX, 'models', 'llama-gqa'));
  const peft = applyMethod(model as LlamaModel, method, { seed: 1 });
  const task = fixedTask(expected['llama-gqa']!.input_ids);
  const engine = await TrainEngine.create(model as LlamaModel, task, peft.trainable, {
    schedule: { name: 'constant', baseLr: 1e-2, warmupSteps: 0, totalSteps: 10, minLrRatio: 0 },
    betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, gradClip: 1, noDecay: () => false,
  });
  const units = task.countUnits(null as unknown as RecordBatch);
  const micro = [{ rows: null as unknown as RecordBatch, ctx: { seed: 1, epoch: 0, sampleIds: [], training: true } }];
  try {
    const first = await engine.computeGrads(micro, units);
    engine.applyUpdate(first.grad, 0);
    const second = await engine.computeGrads(micro, units);
    return [first.lossSum / units, second.lossSum / units];
  } finally {
    peft.dispose();
    model.dispose();
    clearTransposeCache();
    clearAttentionCaches();
  }
}

for (const backend of BACKENDS) {
  describe(`conformance on ${backend}`, { skip: available.includes(backend) ? false : `webgpu: ${missing}` }, () => {
    for (const [name, c] of Object.entries(CASES)) {
      test(`${name}: forward and backward${backend === 'cpu' ? '' : ' equal cpu\'s'} within ${TOL}`, async () => {
        await initBackend(backend);
        const got = await runCase(c);
        if (backend === 'cpu') return void reference.set(name, got);
        const want = reference.get(name);
        assert.ok(want, 'the cpu suite ran first');
        got.forEach((g, i) => assert.ok(scaledDiff(g, want[i]!) < TOL, `${name} output ${i}: ${scaledDiff(g, want[i]!)}`));
      });
    }

    test(`conv2d and group norm equal torch's (conv.json) within ${TOL}`, async () => {
      await initBackend(backend);
      for (const c of convFixture.cases) {
        const got = await runCase(() => convGolden(c));
        const want = [c.y, c.dx, c.dw, ...(c.db ? [c.db] : [])];
        got.forEach((g, i) => assert.ok(scaledDiff(g, Float32Array.from(want[i]!)) < TOL, `${c.name} output ${i}: ${scaledDiff(g, Float32Array.from(want[i]!))}`));
      }
    });

    test(`the tiny LLaMA's logits and loss equal torch's within ${TOL}`, async () => {
      await initBackend(backend);
      const { model } = await loadModel(path.join(FIX, 'models', 'llama-gqa'));
      const e = expected['llama-gqa']!;
      const [logits, loss] = await runCase(() => {
        const ids = tf.tensor2d(e.input_ids, undefined, 'int32');
        return [(model as LlamaModel).logits(ids), (model as LlamaModel).lossSum(ids, tf.tensor2d(e.labels, undefined, 'int32'))];
      });
      model.dispose();
      assert.ok(scaledDiff(logits!, Float32Array.from(e.logits.flat(2))) < TOL);
      assert.ok(Math.abs(loss![0]! - e.loss_sum) < TOL * Math.max(1, Math.abs(e.loss_sum)), `loss ${loss![0]} vs ${e.loss_sum}`);
    });

    for (const method of METHODS) {
      test(`one training step of ${method}: the same loss before and after as on cpu`, async () => {
        await initBackend(backend);
        const got = await trainStep(method);
        const row = losses.get(method) ?? new Map<string, [number, number]>();
        losses.set(method, row.set(backend, got));
        const cpu = row.get('cpu');
        assert.ok(cpu, 'the cpu suite ran first');
        for (const i of [0, 1]) assert.ok(Math.abs(got[i]! - cpu[i]!) <= TOL * Math.max(1, Math.abs(cpu[i]!)), `${method} loss ${i}: ${got[i]} vs cpu ${cpu[i]}`);
      });
    }
  });
}

after(() => {
  // The agreement table docs/gpu.md quotes: per method, the loss after one step on each backend.
  const rows = [...losses].map(([m, r]) => ({ method: m, ...Object.fromEntries([...r].map(([b, l]) => [b, l[1]])) }));
  if (rows.length) console.log(`conformance losses after one step: ${JSON.stringify(rows)}`);
});

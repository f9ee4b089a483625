// The DiT objective against the torch reference's direct computation, the stop-gradient of the VLB
// term, respacing, sampler determinism, and the diffusion task's split invariance.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { initBackend, tf } from '../../src/backend/select.js';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { fixedBatch, latentSchema } from '../../src/data/arrow.js';
import { Rng } from '../../src/nn/rng.js';
import { gaussian, linearSchedule, lossTerms, respace, sampleLatents } from '../../src/models/diffusion.js';
import { loadDit } from '../../src/models/dit-load.js';
import { DiffusionTask } from '../../src/train/tasks/diffusion.js';
import { tmpDir } from '../helpers.js';

await initBackend('wasm');
const golden = readSafetensors(path.join(import.meta.dirname, '..', 'fixtures', 'dit', 'golden.safetensors')).tensors;
const g = (name: string): Float32Array => golden.get(name)!.data as Float32Array;
const t4 = (name: string, c: number): tf.Tensor4D => tf.tensor4d(g(name), [3, c, 8, 8]);

void test('linear schedule and respacing follow DiT (space_timesteps, ᾱ kept)', () => {
  const s = linearSchedule(1000);
  assert.ok(Math.abs(s.betas[0]! - 1e-4) < 1e-15 && Math.abs(s.betas[999]! - 0.02) < 1e-15);
  const r = respace(s, 250);
  assert.equal(r.numTimesteps, 250);
  assert.equal(r.timestepMap[0], 0);
  assert.equal(r.timestepMap[249], 999);
  for (let i = 0; i < 250; i++) assert.ok(Math.abs(r.alphasCumprod[i]! - s.alphasCumprod[r.timestepMap[i]!]!) < 1e-12);
  // Python rounds 2.5 to 2: 5 steps over 1000 take 0, 250 (249.75), 500 (499.5 -> 500 even), 749, 999.
  assert.deepEqual(Array.from(respace(s, 5).timestepMap), [0, 250, 500, 749, 999]);
  assert.equal(respace(s, 1000), s);
  assert.throws(() => respace(s, 0), /--steps/);
});

void test('ε-MSE and the VLB term match the direct float64 computation (t = 0, 417, 999)', () => {
  const s = linearSchedule(1000);
  const t = Array.from(golden.get('t')!.data);
  const terms = lossTerms(t4('vlb_x0', 4), t4('vlb_noise', 4), t, t4('vlb_out', 8), s);
  const mse = terms.mse.dataSync();
  const vb = terms.vb.dataSync();
  for (let i = 0; i < 3; i++) {
    assert.ok(Math.abs(mse[i]! - g('vlb_mse')[i]!) < 1e-5, `mse ${i}: ${mse[i]} vs ${g('vlb_mse')[i]}`);
    assert.ok(Math.abs(vb[i]! - g('vlb_vb')[i]!) < 1e-4 * Math.max(1, Math.abs(g('vlb_vb')[i]!)), `vb ${i}: ${vb[i]} vs ${g('vlb_vb')[i]}`);
  }
  const loss = terms.loss.dataSync();
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(loss[i]! - mse[i]! - vb[i]!) < 1e-6);
  tf.dispose(terms);
});

void test('the VLB term reaches the variance channels only (stop-gradient on ε)', () => {
  const s = linearSchedule(1000);
  const t = [5, 417, 999];
  const x0 = t4('vlb_x0', 4);
  const noise = t4('vlb_noise', 4);
  const grad = tf.grad((out: tf.Tensor) => tf.sum(lossTerms(x0, noise, t, out as tf.Tensor4D, s).vb))(t4('vlb_out', 8));
  const gEps = tf.abs(grad.slice([0, 0, 0, 0], [-1, 4, -1, -1])).max().dataSync()[0]!;
  const gVar = tf.abs(grad.slice([0, 4, 0, 0], [-1, 4, -1, -1])).max().dataSync()[0]!;
  assert.equal(gEps, 0);
  assert.ok(gVar > 0);
});

void test('samplers are deterministic for a seed; DDIM with η = 0 draws no noise after the start', () => {
  const model = loadDit('tiny-dit', { seed: 2, init: 'random' });
  const run = (sampler: 'ddpm' | 'ddim', seed: number, cfg = 4, eta = 0): Float32Array => {
    const z = sampleLatents(model, [1, 7], { steps: 4, cfg, sampler, seed, eta });
    assert.deepEqual(z.shape, [2, 4, 8, 8]);
    const d = z.dataSync() as Float32Array;
    z.dispose();
    return d;
  };
  const before = tf.memory().numTensors;
  const a = run('ddpm', 5);
  assert.deepEqual(run('ddpm', 5), a);
  assert.notDeepEqual(run('ddpm', 6), a);
  const d = run('ddim', 5);
  assert.deepEqual(run('ddim', 5), d);
  assert.notDeepEqual(d, a);
  assert.ok(d.every(Number.isFinite) && a.every(Number.isFinite));
  assert.deepEqual(run('ddim', 5, 1, 0.5), run('ddim', 5, 1, 0.5));
  assert.equal(tf.memory().numTensors, before);
  model.dispose();
});

function latentRows(n: number): ReturnType<typeof fixedBatch> {
  const values = gaussian(Rng.from(9), n * 4 * 8 * 8);
  const labels = Int32Array.from({ length: n }, (_, i) => i % 10);
  return fixedBatch(latentSchema([4, 8, 8], Array.from({ length: 10 }, (_, i) => `c${i}`)), values, labels);
}

void test('diffusion task: finite loss, equal for any split of the batch, flat tensor count, gradients', async () => {
  const model = loadDit('tiny-dit', { seed: 4, init: 'random' });
  const task = new DiffusionTask({ timesteps: 1000, class_dropout: 0.5 });
  const rows = latentRows(4);
  const ctx = { seed: 3, epoch: 1, sampleIds: [10, 11, 12, 13], training: true };
  assert.equal(task.countUnits(rows), 4);
  const whole = task.lossSum(model, rows, ctx);
  const total = whole.dataSync()[0]!;
  assert.ok(Number.isFinite(total) && total > 0);
  const part = (lo: number, hi: number): number => {
    const sub = rows.slice(lo, hi);
    const l = task.lossSum(model, sub, { ...ctx, sampleIds: ctx.sampleIds.slice(lo, hi) });
    const v = l.dataSync()[0]!;
    l.dispose();
    return v;
  };
  assert.ok(Math.abs(part(0, 1) + part(1, 3) + part(3, 4) - total) < 1e-4 * total);
  // Label dropout is seeded too: some samples of a larger batch go to the null class.
  const d = task.draws(model, latentRows(16), { ...ctx, sampleIds: Array.from({ length: 16 }, (_, i) => i) });
  assert.ok(d.labels.some((y) => y === 10) && d.labels.some((y) => y !== 10));
  assert.ok(d.t.every((t) => t >= 0 && t < 1000));

  const bias = model.parts.finalLinear.bias!;
  const fc = model.parts.blocks[0]!.mlp.fc1;
  fc.trainBias = true;
  model.parts.finalLinear.trainBias = true;
  bias.trainable = true;
  fc.bias!.trainable = true;
  // Step 0 fills linear.ts's cache of frozen-weight transposes; later steps must allocate nothing lasting.
  let before = 0;
  for (let step = 0; step < 3; step++) {
    if (step === 1) before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(() => task.lossSum(model, rows, ctx), [bias, fc.bias!]);
    assert.ok(Object.values(grads).every((gr) => gr.dataSync().every(Number.isFinite)));
    assert.ok(grads[bias.name]!.dataSync().some((v) => v !== 0));
    tf.dispose([value, ...Object.values(grads)]);
  }
  assert.equal(tf.memory().numTensors, before);
  const ev = await task.evaluate(model, [{ rows, ctx: { ...ctx, training: false } }]);
  assert.equal(ev.samples, 4);
  assert.ok(Math.abs(ev.loss! - ev.mse! - ev.vb!) < 1e-5 && Number.isFinite(ev.loss));
  whole.dispose();
  model.dispose();
});

void test('onelora sample writes seeded latents as safetensors; a --vae folder without a VAE and bad flags exit 2', async () => {
  const { Command } = await import('commander');
  const fs = await import('node:fs');
  const { registerSample } = await import('../../src/cli/commands/sample.js');
  const dir = tmpDir('sample');
  const run = async (...args: string[]): Promise<number> => {
    const program = new Command('onelora').exitOverride();
    registerSample(program);
    process.exitCode = 0;
    const write = process.stdout.write;
    process.stdout.write = (() => true) as typeof process.stdout.write;
    const stderr = process.stderr.write;
    process.stderr.write = (() => true) as typeof process.stderr.write;
    try {
      await program.parseAsync(['node', 'onelora', 'sample', ...args]);
    } finally {
      process.stdout.write = write;
      process.stderr.write = stderr;
    }
    const code = Number(process.exitCode ?? 0);
    process.exitCode = 0;
    return code;
  };
  const out = (n: string): string => path.join(dir, n);
  assert.equal(await run('--model', 'tiny-dit', '--class', '3', '--steps', '3', '--sampler', 'ddim', '--num', '2', '--seed', '7', '--out', out('a.safetensors')), 0);
  assert.equal(await run('--model', 'tiny-dit', '--class', '3', '--steps', '3', '--sampler', 'ddim', '--num', '2', '--seed', '7', '--out', out('b.safetensors')), 0);
  const a = readSafetensors(out('a.safetensors'));
  assert.deepEqual(a.tensors.get('latents')!.shape, [2, 4, 8, 8]);
  assert.deepEqual(Array.from(a.tensors.get('labels')!.data), [3, 3]);
  assert.equal(a.metadata.sampler, 'ddim');
  assert.ok(fs.readFileSync(out('a.safetensors')).equals(fs.readFileSync(out('b.safetensors'))));
  assert.equal(await run('--model', 'tiny-dit', '--class', '3', '--vae', dir, '--out', out('c.safetensors')), 2);
  assert.equal(await run('--model', 'tiny-dit', '--class', '10', '--steps', '2', '--out', out('c.safetensors')), 2);
  assert.equal(await run('--model', 'tiny-dit', '--class', '1', '--sampler', 'euler', '--out', out('c.safetensors')), 2);
  assert.equal(await run('--model', path.join(dir, 'nope'), '--class', '1', '--out', out('c.safetensors')), 2);
});

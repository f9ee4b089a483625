// LoRA-family adapter dropout (PEFT's lora_dropout / vera_dropout) and the PEFT-facing α/dropout
// fields: the SPEC keys, adapter_config.json's field names, the config overrides, MoRA's lora_r,
// and the masks themselves (identity outside training, statistics, gradients through kept entries
// only, the same mask for a sample whatever its micro-batch).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { initBackend, tf } from '../../src/backend/select.js';
import { UserError } from '../../src/errors.js';
import { adapterDropout, dropoutKey, dropoutMask, withDropoutContext, type DropoutContext } from '../../src/nn/dropout.js';
import { applyMethod } from '../../src/peft/apply.js';
import { loadAdapter, saveAdapter } from '../../src/peft/adapter-io.js';
import { DoraAdapter } from '../../src/peft/dora.js';
import { LoraAdapter } from '../../src/peft/lora.js';
import { VeraAdapter } from '../../src/peft/vera.js';
import { moraRank } from '../../src/peft/mora.js';
import { parseMethodSpec } from '../../src/peft/spec.js';
import { methodWithRank } from '../../src/train/method.js';
import { loadPreset } from '../../src/config/presets.js';
import { tmpDir } from '../helpers.js';
import { FakeModel, HIDDEN } from './fake-model.js';

await initBackend('wasm');

const CTX: DropoutContext = { seed: 42, epoch: 0, sampleIds: [3, 11] };

function input(n: number, k: number): tf.Tensor2D {
  return tf.tensor2d(Array.from({ length: n * k }, (_, i) => Math.sin(i + 1)), [n, k]);
}

void test('SPEC: dropout next to alpha for lora, dora, vera and MoRA; canonical text; ranges; not for 1lora', () => {
  const s = parseMethodSpec('lora:r=2,dropout=0.05,alpha=16');
  assert.deepEqual(s.terms[0], { name: 'lora', r: 2, alpha: 16, dropout: 0.05 });
  assert.equal(s.text, 'lora:r=2,alpha=16,dropout=0.05');
  for (const m of ['dora', 'vera', 'mora1', 'mora6']) assert.equal(parseMethodSpec(`${m}:dropout=0.1`).terms[0]!.dropout, 0.1);
  assert.throws(() => parseMethodSpec('lora:dropout=1'), (e: unknown) => e instanceof UserError && /'dropout' expects a probability in \[0, 1\)/.test(e.message));
  assert.throws(() => parseMethodSpec('lora:dropout=-0.1'), /'dropout' expects a number ≥ 0/);
  assert.throws(() => parseMethodSpec('1lora:dropout=0.1'), /key 'dropout' does not apply/);
  assert.throws(() => parseMethodSpec('vera:alpha=2'), /key 'alpha' does not apply/);
});

void test("MoRA: r is r̂ itself, lora_r is peft-mora's LoRA rank (r̂ = ⌊√((k+d)·lora_r) + ½⌋, even for type 6)", () => {
  const q = { path: 'q', inFeatures: 4096, outFeatures: 4096, hasBias: false, role: 'q' as const };
  const up = { ...q, outFeatures: 11008 };
  assert.equal(moraRank(q, { lora_r: 8 }, 6), 256); // the MoRA README's RANK=8 on LLaMA-2-7B
  assert.equal(moraRank(up, { lora_r: 8 }, 1), 348); // √(15104·8) = 347.6
  assert.equal(moraRank({ ...q, outFeatures: 4095 }, { lora_r: 1 }, 1), 91); // √8191 = 90.5 rounds up
  assert.equal(moraRank({ ...q, outFeatures: 4095 }, { lora_r: 1 }, 6), 90);
  assert.equal(moraRank(q, { r: 7 }, 1), 7);
  assert.equal(parseMethodSpec('mora6:lora_r=8').text, 'mora6:lora_r=8');
  assert.throws(() => parseMethodSpec('mora1:r=4,lora_r=8'), /'r' \(r̂ itself\) or 'lora_r'/);
  assert.equal(methodWithRank('mora6:lora_r=8', 4).text, 'mora6:lora_r=8', 'the config rank does not override lora_r');
});

void test('config alpha/dropout override the terms that take them and leave the rest alone', () => {
  assert.equal(methodWithRank('lora', undefined, { alpha: 16, dropout: 0.05 }).text, 'lora:alpha=16,dropout=0.05');
  assert.equal(methodWithRank('vera+norms', 2, { alpha: 16, dropout: 0.05 }).text, 'vera:r=2,dropout=0.05+norms');
  assert.equal(methodWithRank('1lora', undefined, { alpha: 16, dropout: 0.05 }).text, '1lora');
  assert.equal(methodWithRank('dora:dropout=0.2', undefined, { dropout: 0.05 }).text, 'dora:dropout=0.2', 'the SPEC wins');
});

void test('dropout is the identity at p = 0 and outside a training forward', () => {
  const x = input(4, 6);
  assert.equal(adapterDropout(x, 0.5, 1), x);
  assert.equal(withDropoutContext(CTX, () => adapterDropout(x, 0, 1)), x);
  const model = new FakeModel();
  const state = applyMethod(model, 'lora:r=2,dropout=0.5', { seed: 1 });
  const layer = model.linear('up_proj');
  const a = layer.adapter as LoraAdapter;
  a.B.assign(tf.ones(a.B.shape));
  const ref = new FakeModel();
  const refState = applyMethod(ref, 'lora:r=2', { seed: 1 });
  (ref.linear('up_proj').adapter as LoraAdapter).B.assign(tf.ones(a.B.shape));
  const xi = input(4, HIDDEN);
  assert.deepEqual(layer.forward(xi).dataSync(), ref.linear('up_proj').forward(xi).dataSync(), 'eval: no dropout');
  const train = withDropoutContext({ ...CTX, sampleIds: [1, 2] }, () => layer.forward(xi).dataSync());
  assert.notDeepEqual(train, ref.linear('up_proj').forward(xi).dataSync(), 'training: dropout acts');
  state.dispose();
  refState.dispose();
  model.dispose();
  ref.dispose();
});

void test('masks: a fraction p dropped, kept entries scaled by 1/(1−p), per sample, epoch and module', () => {
  const p = 0.3;
  const m = dropoutMask({ seed: 1, epoch: 0, sampleIds: [0, 1, 2, 3] }, 400, 250, p, dropoutKey('a'));
  const zeros = m.reduce((c, v) => c + (v === 0 ? 1 : 0), 0) / m.length;
  assert.ok(Math.abs(zeros - p) < 0.005, `dropped fraction ${zeros}`);
  assert.ok(m.every((v) => v === 0 || Math.abs(v - 1 / (1 - p)) < 1e-6));
  const mean = m.reduce((s, v) => s + v, 0) / m.length;
  assert.ok(Math.abs(mean - 1) < 0.01, `E[mask] = ${mean}`);
  // Sample 11 at positions 0..2 gets the same mask in a micro-batch padded to 3 or to 5, beside any sample.
  const k = 8;
  const alone = dropoutMask({ ...CTX, sampleIds: [11] }, 3, k, p, 7);
  const padded = dropoutMask({ ...CTX, sampleIds: [3, 11] }, 10, k, p, 7);
  assert.deepEqual(padded.slice(5 * k, 8 * k), alone);
  const other = (c: Partial<DropoutContext>, key = 7): Float32Array => dropoutMask({ ...CTX, sampleIds: [11], ...c }, 3, k, p, key);
  for (const differs of [other({ epoch: 1 }), other({ seed: 43 }), other({ sampleIds: [12] }), other({}, 8)]) assert.notDeepEqual(differs, alone);
});

void test('LoRA with dropout: ∂/∂A comes only from the kept entries of x (s·(mask ⊙ x)ᵀ 1 Bᵀ)', () => {
  const model = new FakeModel();
  const state = applyMethod(model, 'lora:r=2,alpha=4,dropout=0.4', { seed: 3 });
  const layer = model.linear('up_proj');
  const a = layer.adapter as LoraAdapter;
  a.B.assign(tf.tensor2d(Array.from({ length: a.B.size }, (_, i) => 0.1 * (i + 1)), a.B.shape));
  const n = 6;
  const x = input(n, HIDDEN);
  const ctx = { seed: 5, epoch: 2, sampleIds: [4, 8, 15] };
  const dA = withDropoutContext(ctx, () => tf.variableGrads(() => tf.sum(layer.forward(x)) as tf.Scalar, [a.A]).grads[a.A.name]!);
  const mask = dropoutMask(ctx, n, HIDDEN, 0.4, dropoutKey(layer.path));
  const xv = x.dataSync();
  const b = a.B.arraySync(); // [r, d]
  const want: number[] = [];
  for (let j = 0; j < HIDDEN; j++) {
    let col = 0;
    for (let i = 0; i < n; i++) col += mask[i * HIDDEN + j]! * xv[i * HIDDEN + j]!;
    for (let r = 0; r < a.r; r++) want.push(a.scale * col * b[r]!.reduce((s, v) => s + v, 0));
  }
  const got = dA.dataSync();
  want.forEach((w, i) => assert.ok(Math.abs(got[i]! - w) < 1e-4, `dA[${i}] ${got[i]} vs ${w}`));
  const droppedCols = [...Array(HIDDEN).keys()].filter((j) => [...Array(n).keys()].every((i) => mask[i * HIDDEN + j] === 0));
  for (const j of droppedCols) for (let r = 0; r < a.r; r++) assert.equal(got[j * a.r + r], 0);
  state.dispose();
  model.dispose();
});

void test("DoRA and VeRA with dropout: PEFT's forwards on x̃ = mask ⊙ x", () => {
  const ctx = { seed: 9, epoch: 0, sampleIds: [2, 5] };
  const x = input(4, HIDDEN);
  const close = (a: tf.Tensor, b: tf.Tensor): void => {
    const d = tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!;
    assert.ok(d < 1e-5, `max |Δ| ${d}`);
  };
  for (const spec of ['dora:r=2,dropout=0.3', 'vera:r=2,dropout=0.3']) {
    const model = new FakeModel();
    const state = applyMethod(model, spec, { seed: 2 });
    const layer = model.linear('k_proj'); // has a bias
    const ad = layer.adapter!;
    const xd = tf.mul(x, tf.tensor2d(dropoutMask(ctx, 4, HIDDEN, 0.3, dropoutKey(layer.path)), [4, HIDDEN]));
    let want: tf.Tensor;
    if (ad instanceof DoraAdapter) {
      ad.B.assign(tf.fill(ad.B.shape, 0.2));
      // PEFT DoraLinearLayer with lora_dropout active: W0 x + β + (g − 1) ⊙ W0 x̃ + g ⊙ s B A x̃
      const g = ad.weightNorm(layer).arraySync().map((nrm, j) => ad.m.arraySync()[j]! / nrm);
      const gt = tf.tensor1d(g);
      const w0xd = tf.matMul(xd, layer.weight);
      want = tf.add(tf.add(tf.add(tf.matMul(x, layer.weight), layer.bias!), tf.mul(w0xd, tf.sub(gt, 1))), tf.mul(tf.mul(tf.matMul(tf.matMul(xd, ad.A), ad.B), ad.scale), gt));
    } else {
      const v = ad as VeraAdapter;
      v.lambdaB.assign(tf.fill(v.lambdaB.shape, 0.5));
      const { a, b } = v.sliced(layer);
      want = tf.add(tf.add(tf.matMul(x, layer.weight), layer.bias!), tf.mul(tf.matMul(tf.mul(tf.matMul(xd, a), v.lambdaD), b), v.lambdaB));
    }
    close(withDropoutContext(ctx, () => layer.forward(x)), want);
    state.dispose();
    model.dispose();
  }
});

void test("adapter_config.json carries lora_alpha/lora_dropout and vera_dropout under PEFT's names, both ways", async () => {
  for (const [spec, field, peftType] of [['lora:r=2,alpha=16,dropout=0.05', 'lora_dropout', 'LORA'], ['dora:r=2,alpha=16,dropout=0.05', 'lora_dropout', 'LORA'], ['vera:r=2,dropout=0.05', 'vera_dropout', 'VERA']] as const) {
    const model = new FakeModel();
    const state = applyMethod(model, spec, { seed: 1 });
    const dir = tmpDir('peft');
    await saveAdapter(dir, state);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(cfg.peft_type, peftType);
    assert.equal(cfg[field], 0.05);
    if (peftType === 'LORA') assert.equal(cfg.lora_alpha, 16);
    const loaded = loadAdapter(dir, new FakeModel());
    assert.equal(loaded.spec.terms[0]!.dropout, 0.05, spec);
    if (peftType === 'LORA') assert.equal(loaded.spec.terms[0]!.alpha, 16);
    // A config as PEFT writes it with its own values.
    fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, [field]: 0.1, ...(peftType === 'LORA' ? { lora_alpha: 32 } : {}) }));
    const peft = loadAdapter(dir, new FakeModel());
    assert.equal(peft.spec.terms[0]!.dropout, 0.1);
    if (peftType === 'LORA') assert.equal(peft.spec.terms[0]!.alpha, 32);
    fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, [field]: 1.5 }));
    assert.throws(() => loadAdapter(dir, new FakeModel()), new RegExp(`'${field}' must be in \\[0, 1\\)`));
    state.dispose();
    model.dispose();
  }
});

void test("each paper preset states the LoRA-family α and dropout of the code it follows (MoRA's train.py for LLaMA)", () => {
  const want: Record<string, [number, number]> = {
    'llama2-7b-metamath': [16, 0.05],
    'llama2-13b-metamath': [16, 0.05],
    'vit-b16-cifar10': [2, 0],
    'vit-b16-cifar100': [2, 0],
    'dit-xl-2-food101': [2, 0],
  };
  for (const [name, [alpha, dropout]] of Object.entries(want)) {
    const cfg = loadPreset(name);
    assert.deepEqual([cfg.alpha, cfg.dropout], [alpha, dropout], name);
    const text = fs.readFileSync(path.join(import.meta.dirname, '..', '..', 'presets', `${name}.yaml`), 'utf8');
    assert.match(text, alpha === 16 ? /kongds\/MoRA train\.py/ : /onelora's choice/, `${name} names where its values come from`);
    const lora = methodWithRank('lora', cfg.rank, { alpha: cfg.alpha, dropout: cfg.dropout }).text;
    assert.equal(lora, dropout > 0 ? `lora:alpha=${alpha},dropout=${dropout}` : `lora:alpha=${alpha},dropout=0`);
    assert.equal(methodWithRank(cfg.method, cfg.rank, { alpha: cfg.alpha, dropout: cfg.dropout }).text, '1lora');
  }
});

// Table-driven conformance suite over the method registry (STYLE item 11): every method and the
// paper's combinations go through the same checks — identity at init, gradients only and all on
// trainable tensors, merged ≡ adapted, unmerge restores W0, save → load → byte-identical re-save,
// seeded determinism, counts from specs equal the tensors built, flat tensor counts.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { initBackend, tf } from '../../src/backend/select.js';
import { applyMethod, type PeftState } from '../../src/peft/apply.js';
import { loadAdapter, saveAdapter } from '../../src/peft/adapter-io.js';
import { countTrainable, trainableKeys, type CountDescription } from '../../src/peft/count.js';
import { uniformArray } from '../../src/peft/init.js';
import { METHODS, methodDef } from '../../src/peft/registry.js';
import { parseMethodSpec } from '../../src/peft/spec.js';
import { FakeModel, input, maxAbs, maxRelErr } from './fake-model.js';

await initBackend('wasm');

const CASES: { spec: string; family?: 'llama' | 'vit' }[] = [
  ...METHODS.map((m) => ({ spec: m.name })),
  { spec: 'lora:r=2,alpha=3,rslora=true' }, { spec: 'dora:r=2' }, { spec: 'vera:r=3,seed=5' }, { spec: 'mora1:r=3' }, { spec: 'mora6:r=4' },
  { spec: '1lora+norms' }, { spec: '1lora+bitfit' }, { spec: '1lora+difffit-gamma' }, { spec: '1lora+bitfit+difffit-gamma+norms' },
  { spec: 'lora+bitfit' }, { spec: 'dora+bitfit+difffit-gamma' }, { spec: 'vera+difffit' }, { spec: 'mora6+bitfit' },
  { spec: '1lora-random:seed=3+bitfit' }, { spec: 'lora:targets=qkv' }, { spec: '1lora:targets=o_proj,down_proj' },
  { spec: '1lora', family: 'vit' }, { spec: 'lora', family: 'vit' }, { spec: 'all', family: 'vit' },
];

function describe(m: FakeModel): CountDescription {
  return {
    linears: m.linears().map((l) => ({ path: l.path, inFeatures: l.inFeatures, outFeatures: l.outFeatures, hasBias: l.hasBias, role: l.role })),
    norms: m.norms().map((n) => ({ path: n.path, features: n.features, hasBias: n.hasBias })),
    headPaths: m.headPaths, totalParams: m.totalParams, family: m.family,
  };
}

function perturb(state: PeftState): void {
  let i = 0;
  for (const [key, v] of state.trainable) {
    const noise = uniformArray(v.size, 0.3, 11 + i++, key);
    v.assign(tf.tidy(() => tf.add(v, tf.tensor(noise, v.shape))));
  }
}

function snapshot(m: FakeModel): Map<string, Float32Array> {
  return new Map([...m.parameters()].map(([k, v]) => [k, v.dataSync().slice() as Float32Array]));
}

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'onelora-peft-'));
}

const x = input(5);
const target = tf.tensor2d(uniformArray(25, 1, 9, 'target'), [5, 5]);

for (const c of CASES) {
  void test(`conformance: ${c.spec}${c.family ? ` (${c.family})` : ''}`, () => {
    const spec = parseMethodSpec(c.spec);
    const model = new FakeModel(c.family);
    const desc = describe(model);
    const y0 = model.forward(x);
    const state = applyMethod(model, spec, { seed: 1 });
    const defs = spec.terms.map((t) => methodDef(t.name));

    // Identity at init where every term promises it.
    if (defs.every((d) => d.identityAtInit)) assert.ok(maxRelErr(model.forward(x), y0) <= 1e-6, 'identity at init');

    // Counting from shapes alone equals the tensors built (the new head apart).
    const built = new Map([...state.trainable].filter(([k]) => !state.headKeys.has(k)).map(([k, v]) => [k, v.size]));
    const counted = countTrainable(desc, spec);
    assert.equal(counted.trainable, [...built.values()].reduce((a, b) => a + b, 0), 'count = built');
    assert.equal(counted.head, [...state.headKeys].reduce((a, k) => a + state.trainable.get(k)!.size, 0), 'head count');
    assert.equal(counted.layers, state.targets.length);
    if (!spec.terms.some((t) => t.name === 'all')) assert.deepEqual(trainableKeys(desc, spec).keys, built, 'keys and sizes');

    // Seeded determinism: the same spec and seed give byte-identical files.
    const dInit = [tmp(), tmp()];
    saveAdapter(dInit[0]!, state);
    const twin = new FakeModel(c.family);
    const twinState = applyMethod(twin, spec, { seed: 1 });
    saveAdapter(dInit[1]!, twinState);
    for (const f of ['adapter_model.safetensors', 'adapter_config.json']) {
      assert.ok(fs.readFileSync(path.join(dInit[0]!, f)).equals(fs.readFileSync(path.join(dInit[1]!, f))), `seeded ${f}`);
    }
    twinState.dispose();
    twin.dispose();

    perturb(state);
    const frozen = [...model.linears()].flatMap((l) => [l.weight, ...(l.bias ? [l.bias] : [])]).filter((v) => ![...state.trainable.values()].includes(v));
    const trainableVars = [...state.trainable.values()];
    const loss = (): tf.Scalar => tf.sum(tf.mul(model.forward(x), target));
    let before = 0;
    for (let step = 0; step < 3; step++) {
      // Step 0 fills the frozen-transpose cache; from then on the count must not move.
      if (step === 1) before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(loss, [...trainableVars, ...frozen, ...state.buffers.values()]);
      const names = new Set(Object.keys(grads));
      for (const v of frozen) assert.ok(!names.has(v.name), `frozen ${v.name} got a gradient`);
      for (const [key, v] of state.trainable) {
        assert.ok(names.has(v.name), `${key} has no gradient`);
        assert.ok(maxAbs(grads[v.name]!) > 0, `${key} gradient is zero`);
      }
      value.dispose();
      tf.dispose(grads);
    }
    assert.equal(tf.memory().numTensors, before, 'tensor count flat across steps');

    // Merged ≡ adapted; unmerge restores W0.
    const yAdapted = model.forward(x);
    if (defs.every((d) => d.mergeable)) {
      const w0 = snapshot(model);
      state.merge();
      assert.ok(model.linears().every((l) => l.merged || l.adapter === null));
      assert.ok(maxRelErr(model.forward(x), yAdapted) <= 1e-5, 'merged = adapted');
      state.unmerge();
      for (const [k, v] of model.parameters()) {
        const a = v.dataSync() as Float32Array;
        const b = w0.get(k)!;
        const err = a.reduce((m, e, i) => Math.max(m, Math.abs(e - b[i]!)), 0);
        assert.ok(err <= 1e-6 * Math.max(1, ...b.map(Math.abs)), `unmerge restores ${k} (${err})`);
      }
      assert.ok(maxRelErr(model.forward(x), yAdapted) <= 1e-6);
    }

    // Save → load on a fresh model → same outputs → byte-identical re-save.
    const [d1, d2] = [tmp(), tmp()];
    saveAdapter(d1, state, { baseModel: 'fake', taskType: 'CAUSAL_LM' });
    const model2 = new FakeModel(c.family);
    const loaded = loadAdapter(d1, model2);
    assert.ok(maxRelErr(model2.forward(x), yAdapted) <= 1e-6, 'loaded adapter reproduces the outputs');
    saveAdapter(d2, loaded, { baseModel: 'fake', taskType: 'CAUSAL_LM' });
    for (const f of ['adapter_model.safetensors', 'adapter_config.json']) {
      assert.ok(fs.readFileSync(path.join(d1, f)).equals(fs.readFileSync(path.join(d2, f))), `re-saved ${f} identical`);
    }
    loaded.dispose();
    model2.dispose();

    // dispose restores the base model.
    state.dispose();
    assert.ok(model.linears().every((l) => l.adapter === null && !l.trainBias && !l.trainWeight));
    // (Selection methods train the model's own biases, norms or head in place: those stay trained.)
    if (state.headKeys.size === 0 && defs.every((d) => d.kind === 'delta' || d.kind === 'gamma')) assert.ok(maxRelErr(model.forward(x), y0) <= 1e-6, 'dispose restores');
    model.dispose();
    for (const d of [...dInit, d1, d2]) fs.rmSync(d, { recursive: true, force: true });
  });
}

// Table-driven conformance suite over the method registry (docs/internals.md#tests): every method and the
// paper's combinations (conformance-cases.ts) go through the same checks — identity at init,
// counts from specs equal the tensors built, seeded determinism, gradients only and all on
// trainable tensors, flat tensor counts, merged ≡ adapted, unmerge restores W0, save → load →
// byte-identical re-save, dispose restores. One subtest per (case, check), so a failing check
// does not hide the others; the checks share one adapted model per case, in this order.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { initBackend, tf } from '../../src/backend/select.js';
import { applyMethod, type PeftState } from '../../src/peft/apply.js';
import { loadAdapter, saveAdapter } from '../../src/peft/adapter-io.js';
import { countTrainable, paramCount, trainableKeys, type CountDescription } from '../../src/peft/count.js';
import { uniformArray } from '../../src/peft/init.js';
import { methodDef } from '../../src/peft/registry.js';
import { parseMethodSpec } from '../../src/peft/spec.js';
import { CASES, caseName, type ConformanceCase } from './conformance-cases.js';
import { FakeModel, input, maxAbs, maxRelErr } from './fake-model.js';

await initBackend('wasm');

function countDescription(m: FakeModel): CountDescription {
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

const ADAPTER_FILES = ['adapter_model.safetensors', 'adapter_config.json'];

function sameFiles(a: string, b: string, what: string): void {
  for (const f of ADAPTER_FILES) assert.ok(fs.readFileSync(path.join(a, f)).equals(fs.readFileSync(path.join(b, f))), `${what} ${f}`);
}

const x = input(5);
const target = tf.tensor2d(uniformArray(25, 1, 9, 'target'), [5, 5]);

/** Three training steps' gradients (names, and the size of each trainable one) and tensor counts. */
interface Steps {
  readonly names: Set<string>[];
  readonly sizes: Map<string, number>[];
  readonly before: number;
  readonly after: number;
}

function conformance(c: ConformanceCase): void {
  const spec = parseMethodSpec(c.spec);
  const defs = spec.terms.map((t) => methodDef(t.name));
  const dirs: string[] = [];
  const tmp = (): string => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'onelora-peft-'));
    dirs.push(d);
    return d;
  };
  let model: FakeModel;
  let desc: CountDescription;
  let y0: tf.Tensor;
  let state: PeftState;
  // Perturbed once, before the first check that trains, merges or saves trained values.
  let yAdapted: tf.Tensor | null = null;
  const perturbed = (): tf.Tensor => {
    if (!yAdapted) {
      perturb(state);
      yAdapted = model.forward(x);
    }
    return yAdapted;
  };
  let steps: Steps | null = null;
  const runSteps = (): Steps => {
    if (steps) return steps;
    perturbed();
    const frozen = frozenLinearVars();
    const trainableVars = [...state.trainable.values()];
    const loss = (): tf.Scalar => tf.sum(tf.mul(model.forward(x), target));
    const out: { names: Set<string>[]; sizes: Map<string, number>[]; before: number } = { names: [], sizes: [], before: 0 };
    for (let step = 0; step < 3; step++) {
      // Step 0 fills the frozen-transpose cache; from then on the count must not move.
      if (step === 1) out.before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(loss, [...trainableVars, ...frozen, ...state.buffers.values()]);
      out.names.push(new Set(Object.keys(grads)));
      out.sizes.push(new Map([...state.trainable].filter(([, v]) => grads[v.name]).map(([key, v]) => [key, maxAbs(grads[v.name]!)])));
      value.dispose();
      tf.dispose(grads);
    }
    steps = { ...out, after: tf.memory().numTensors };
    return steps;
  };
  const frozenLinearVars = (): tf.Variable[] =>
    [...model.linears()].flatMap((l) => [l.weight, ...(l.bias ? [l.bias] : [])]).filter((v) => ![...state.trainable.values()].includes(v));
  // One merge → unmerge cycle, observed: the merged forward, then W0 before and after.
  let cycle: { allMerged: boolean; merged: tf.Tensor; w0: Map<string, Float32Array>; restored: Map<string, Float32Array>; unmerged: tf.Tensor } | null = null;
  const mergeCycle = (): NonNullable<typeof cycle> => {
    if (cycle) return cycle;
    perturbed();
    const w0 = snapshot(model);
    state.merge();
    let allMerged: boolean;
    let merged: tf.Tensor;
    try {
      allMerged = model.linears().every((l) => l.merged || l.adapter === null);
      merged = model.forward(x);
    } finally {
      state.unmerge();
    }
    cycle = { allMerged, merged, w0, restored: snapshot(model), unmerged: model.forward(x) };
    return cycle;
  };
  let roundTrip: { d1: string; d2: string; output: tf.Tensor } | null = null;
  const saveLoadSave = async (): Promise<{ d1: string; d2: string; output: tf.Tensor }> => {
    if (roundTrip) return roundTrip;
    perturbed();
    const [d1, d2] = [tmp(), tmp()];
    await saveAdapter(d1, state, { baseModel: 'fake', taskType: 'CAUSAL_LM' });
    const model2 = new FakeModel(c.family);
    const loaded = loadAdapter(d1, model2);
    const output = model2.forward(x);
    await saveAdapter(d2, loaded, { baseModel: 'fake', taskType: 'CAUSAL_LM' });
    loaded.dispose();
    model2.dispose();
    roundTrip = { d1, d2, output };
    return roundTrip;
  };

  describe(`conformance: ${caseName(c)}`, () => {
    before(() => {
      model = new FakeModel(c.family);
      desc = countDescription(model);
      y0 = model.forward(x);
      state = applyMethod(model, spec, { seed: 1 });
    });
    after(() => {
      state.dispose();
      model.dispose();
      tf.dispose([y0, ...(yAdapted ? [yAdapted] : []), ...(cycle ? [cycle.merged, cycle.unmerged] : []), ...(roundTrip ? [roundTrip.output] : [])]);
      for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    });

    it('identity at init', { skip: !defs.every((d) => d.identityAtInit) }, () => {
      assert.ok(maxRelErr(model.forward(x), y0) <= 1e-6, 'identity at init');
    });

    it('counting from shapes alone equals the tensors built (the new head apart)', () => {
      const built = new Map([...state.trainable].filter(([k]) => !state.headKeys.has(k)).map(([k, v]) => [k, v.size]));
      const counted = countTrainable(desc, spec);
      assert.equal(counted.trainable, [...built.values()].reduce((a, b) => a + b, 0), 'count = built');
      assert.equal(counted.head, [...state.headKeys].reduce((a, k) => a + state.trainable.get(k)!.size, 0), 'head count');
      assert.equal(counted.layers, state.targets.length);
      assert.deepEqual(paramCount(state), { trainable: counted.trainable, head: counted.head }, 'the count train and bench report');
      if (!spec.terms.some((t) => t.name === 'all')) assert.deepEqual(trainableKeys(desc, spec).keys, built, 'keys and sizes');
    });

    it('the same spec and seed give byte-identical files', async () => {
      assert.equal(yAdapted, null, 'runs on the freshly initialised state');
      const [a, b] = [tmp(), tmp()];
      await saveAdapter(a, state);
      const twin = new FakeModel(c.family);
      const twinState = applyMethod(twin, spec, { seed: 1 });
      try {
        await saveAdapter(b, twinState);
      } finally {
        twinState.dispose();
        twin.dispose();
      }
      sameFiles(a, b, 'seeded');
    });

    it('gradients reach every trainable tensor and no frozen one', () => {
      const s = runSteps();
      const frozen = frozenLinearVars();
      for (let step = 0; step < s.names.length; step++) {
        const names = s.names[step]!;
        for (const v of frozen) assert.ok(!names.has(v.name), `frozen ${v.name} got a gradient`);
        for (const [key, v] of state.trainable) {
          assert.ok(names.has(v.name), `${key} has no gradient`);
          assert.ok(s.sizes[step]!.get(key)! > 0, `${key} gradient is zero`);
        }
      }
    });

    it('tensor count flat across steps', () => {
      const s = runSteps();
      assert.equal(s.after, s.before, 'tensor count flat across steps');
    });

    const mergeable = defs.every((d) => d.mergeable);
    it('merged ≡ adapted', { skip: !mergeable }, () => {
      const m = mergeCycle();
      assert.ok(m.allMerged);
      assert.ok(maxRelErr(m.merged, perturbed()) <= 1e-5, 'merged = adapted');
    });

    it('unmerge restores W0 and the adapted outputs', { skip: !mergeable }, () => {
      const m = mergeCycle();
      for (const [k, a] of m.restored) {
        const b = m.w0.get(k)!;
        const err = a.reduce((mx, e, i) => Math.max(mx, Math.abs(e - b[i]!)), 0);
        assert.ok(err <= 1e-6 * Math.max(1, ...b.map(Math.abs)), `unmerge restores ${k} (${err})`);
      }
      assert.ok(maxRelErr(m.unmerged, perturbed()) <= 1e-6);
    });

    it('a loaded adapter reproduces the outputs', async () => {
      assert.ok(maxRelErr((await saveLoadSave()).output, perturbed()) <= 1e-6, 'loaded adapter reproduces the outputs');
    });

    it('save → load → re-save is byte-identical', async () => {
      const { d1, d2 } = await saveLoadSave();
      sameFiles(d1, d2, 're-saved');
    });

    it('dispose restores the base model', () => {
      state.dispose();
      assert.ok(model.linears().every((l) => l.adapter === null && !l.trainBias && !l.trainWeight));
      // (Selection methods train the model's own biases, norms or head in place: those stay trained.)
      if (state.headKeys.size === 0 && defs.every((d) => d.kind === 'delta' || d.kind === 'gamma')) assert.ok(maxRelErr(model.forward(x), y0) <= 1e-6, 'dispose restores');
    });
  });
}

for (const c of CASES) conformance(c);

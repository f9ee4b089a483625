// What adding a PEFT method requires: one file with its `MethodDef` and one line in
// src/peft/registry.ts, and then every check below passes for it — it parses as a SPEC, declares
// the keys it takes (and so whether `rank` applies), honours its kind's contract, is documented
// in docs/methods.md, builds on the fake model, round-trips through save/load, and is one of the
// conformance suite's cases (which add the numerical checks).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { initBackend } from '../../src/backend/select.js';
import { UserError } from '../../src/errors.js';
import { loadAdapter, saveAdapter } from '../../src/peft/adapter-io.js';
import { applyMethod } from '../../src/peft/apply.js';
import { DELTA_METHODS, METHOD_NAMES, METHODS, takesRank } from '../../src/peft/registry.js';
import { parseMethodSpec, SPEC_KEYS, type SpecKey } from '../../src/peft/spec.js';
import type { MethodDef } from '../../src/peft/types.js';
import { methodWithRank } from '../../src/train/method.js';
import { CASES } from './conformance-cases.js';
import { FakeModel } from './fake-model.js';

await initBackend('wasm');

/** A valid value for each key (r = 2 is even, for MoRA 6). */
const SAMPLE: Record<SpecKey, string> = { r: '2', lora_r: '2', alpha: '3', dropout: '0.1', rslora: 'true', seed: '4', targets: 'q_proj' };

const DOCS = fs.readFileSync(new URL('../../docs/methods.md', import.meta.url), 'utf8');

/** What each kind must provide for apply.ts to act on it. */
function kindContract(def: MethodDef): void {
  const has = { adapter: !!def.createAdapter, select: !!def.selectLinear, norms: !!def.trainsNorms, model: !!def.selectModel };
  const want: Record<MethodDef['kind'], Partial<typeof has>> = {
    delta: { adapter: true, select: false },
    gamma: { adapter: true, select: false },
    bias: { adapter: false, select: true },
    difffit: { adapter: true, select: true, norms: true },
    norms: { adapter: false, select: false, norms: true },
    all: { adapter: false, select: true, norms: true, model: true },
  };
  for (const [k, v] of Object.entries(want[def.kind])) assert.equal(has[k as keyof typeof has], v, `${def.kind} method: ${k}`);
}

void describe('registry: every method', () => {
  it('is registered once, and the lists derived from the registry agree with it', () => {
    assert.equal(new Set(METHOD_NAMES).size, METHODS.length);
    assert.deepEqual([...METHOD_NAMES], METHODS.map((m) => m.name));
    assert.deepEqual([...DELTA_METHODS], METHODS.filter((m) => m.kind === 'delta').map((m) => m.name));
  });

  for (const def of METHODS) {
    void describe(def.name, () => {
      it('parses as a SPEC on its own, with canonical text its name', () => {
        const spec = parseMethodSpec(def.name);
        assert.deepEqual(spec.terms, [{ name: def.name }]);
        assert.equal(spec.text, def.name);
      });

      it('declares its SPEC keys: each parses, every other key is refused', () => {
        assert.equal(new Set(def.keys).size, def.keys.length, 'no key twice');
        for (const key of def.keys) assert.ok(SPEC_KEYS.includes(key), `'${key}' is a SPEC key`);
        if (def.keys.length) {
          // MoRA's r (r̂ itself) and lora_r (peft-mora's rank) are two ways to say one thing: either, never both.
          const exclusive = def.keys.includes('r') && def.keys.includes('lora_r');
          for (const drop of exclusive ? (['lora_r', 'r'] as const) : [null]) {
            const text = `${def.name}:${def.keys.filter((k) => k !== drop).map((k) => `${k}=${SAMPLE[k]}`).join(',')}`;
            assert.equal(parseMethodSpec(text).terms.length, 1, text);
          }
          if (exclusive) assert.throws(() => parseMethodSpec(`${def.name}:r=2,lora_r=2`), /not both/);
        }
        for (const key of SPEC_KEYS.filter((k) => !def.keys.includes(k))) {
          assert.throws(() => parseMethodSpec(`${def.name}:${key}=${SAMPLE[key]}`), (e: unknown) => e instanceof UserError && /does not apply/.test(e.message), key);
        }
      });

      it('takes a rank exactly when it declares r, and the config rank then applies', () => {
        assert.equal(takesRank(def.name), def.keys.includes('r'));
        assert.equal(methodWithRank(def.name, 4).terms[0]!.r, def.keys.includes('r') ? 4 : undefined);
      });

      it('provides what its kind needs, and a summary', () => {
        kindContract(def);
        assert.ok(def.summary.length > 0);
      });

      it('has a row in docs/methods.md', () => {
        assert.ok(DOCS.includes(`| \`${def.name}\` |`), `docs/methods.md has no row for \`${def.name}\``);
      });

      it('builds on the fake model, saves, and loads back the same tensors', async () => {
        const model = new FakeModel();
        const state = applyMethod(model, def.name, { seed: 1 });
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onelora-registry-'));
        try {
          assert.ok(state.trainable.size > 0, 'something trains');
          await saveAdapter(dir, state);
          const model2 = new FakeModel();
          const loaded = loadAdapter(dir, model2);
          try {
            // (A PEFT-format config loads back with its defaults spelt out: compare the methods.)
            assert.deepEqual(loaded.spec.terms.map((t) => t.name), [def.name]);
            assert.deepEqual([...loaded.trainable.keys()].sort(), [...state.trainable.keys()].sort());
            for (const [key, v] of state.trainable) assert.deepEqual(loaded.trainable.get(key)!.dataSync(), v.dataSync(), key);
          } finally {
            loaded.dispose();
            model2.dispose();
          }
        } finally {
          state.dispose();
          model.dispose();
          fs.rmSync(dir, { recursive: true, force: true });
        }
      });

      it('is a case of the conformance suite', () => {
        assert.ok(CASES.some((c) => c.spec === def.name && c.family === undefined));
      });
    });
  }
});

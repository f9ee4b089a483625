// Property test (fast-check): any set of tensors written with writeSafetensors reads back with the
// same names, dtypes, shapes and values (exact for the dtypes stored without rounding), and equal
// tensors always give byte-identical files, whatever order the record lists them in.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../../src/checkpoint/safetensors.js';
import { tmpDir } from '../helpers.js';

type Exact = 'F32' | 'I32' | 'I64' | 'U8' | 'I8';

const shape = fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 0, maxLength: 3 });
const size = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

function values(dtype: Exact, n: number): fc.Arbitrary<TensorToWrite['data']> {
  switch (dtype) {
    case 'F32': return fc.float32Array({ minLength: n, maxLength: n, noNaN: true });
    case 'I32': case 'I64': return fc.int32Array({ minLength: n, maxLength: n });
    case 'U8': return fc.uint8Array({ minLength: n, maxLength: n });
    case 'I8': return fc.int8Array({ minLength: n, maxLength: n });
  }
}

const tensor: fc.Arbitrary<TensorToWrite> = fc.tuple(fc.constantFrom<Exact>('F32', 'I32', 'I64', 'U8', 'I8'), shape)
  .chain(([dtype, s]) => values(dtype, size(s)).map((data) => ({ dtype, shape: s, data })));

// Names as checkpoints use them: dotted paths (never the reserved __metadata__).
const name = fc.stringMatching(/^[a-z][a-z0-9_.]{0,12}$/);
const record = fc.dictionary(name, tensor, { minKeys: 1, maxKeys: 6 });
const metadata = fc.dictionary(fc.stringMatching(/^[a-z_]{1,8}$/), fc.string({ maxLength: 12 }), { maxKeys: 3 });

test('safetensors: write then read is the identity, and the bytes do not depend on insertion order', () => {
  const dir = tmpDir('safetensors-prop');
  let i = 0;
  fc.assert(fc.property(record, metadata, (tensors, meta) => {
    const file = path.join(dir, `t${i}.safetensors`);
    const again = path.join(dir, `t${i++}-reversed.safetensors`);
    writeSafetensors(file, tensors, meta);
    writeSafetensors(again, Object.fromEntries(Object.entries(tensors).reverse()), meta);
    assert.deepEqual(fs.readFileSync(again), fs.readFileSync(file));
    const back = readSafetensors(file);
    assert.deepEqual(back.metadata, { ...meta });
    assert.deepEqual([...back.tensors.keys()].sort(), Object.keys(tensors).sort());
    for (const [k, t] of Object.entries(tensors)) {
      const r = back.tensors.get(k)!;
      assert.equal(r.dtype, t.dtype, k);
      assert.deepEqual(r.shape, t.shape, k);
      assert.deepEqual(Array.from(r.data), Array.from(t.data), k);
    }
    fs.rmSync(file);
    fs.rmSync(again);
  }), { numRuns: 150, seed: 20261202 });
});

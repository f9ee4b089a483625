import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { demoMetamath, demoShapes } from '../../src/data/demo-data.js';
import { prepare } from '../../src/data/prepare.js';
import { tmpDir } from '../helpers.js';
import { writeTinyTokenizer } from './helpers.js';

const DEMO = path.resolve(import.meta.dirname, '../../data/demo');

void test('demo word problems: deterministic, varied, each response ends with the right answer', () => {
  const rows = demoMetamath(500, 0);
  assert.deepEqual(demoMetamath(500, 0), rows);
  assert.notDeepEqual(demoMetamath(5, 1), rows.slice(0, 5));
  assert.ok(new Set(rows.map((r) => r.type)).size >= 5);
  for (const r of rows) {
    const m = r.response.match(/= \$?(\d+)[^=]*\nThe answer is: (\d+)$/);
    assert.ok(m, r.response);
    assert.equal(m[1], m[2]);
    for (const eq of r.response.matchAll(/(\d+) ([+\-*]) (\d+) = \$?(\d+)/g)) {
      const [a, op, b, c] = [Number(eq[1]), eq[2], Number(eq[3]), Number(eq[4])];
      assert.equal(op === '+' ? a + b : op === '-' ? a - b : a * b, c, r.response);
    }
  }
});

void test('committed demo data matches the generator and prepares with any tokenizer.json', async () => {
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(DEMO, 'metamath-demo.json'), 'utf8')), demoMetamath(2000, 0));
  assert.ok(Buffer.from(demoShapes(6, 1)).equals(fs.readFileSync(path.join(DEMO, 'shapes', 'test_batch.bin'))));
  for (const f of ['metamath-demo.json', 'shapes/data_batch_1.bin']) assert.ok(fs.statSync(path.join(DEMO, f)).size < 1 << 20);
  const dir = tmpDir('data');
  const tok = writeTinyTokenizer(path.join(dir, 'tok'));
  const lm = await prepare({ dataset: 'metamath', input: path.join(DEMO, 'metamath-demo.json'), out: path.join(dir, 'lm'), tokenizer: tok });
  assert.deepEqual(lm.rows, { train: 1600, validation: 400 });
  const img = await prepare({ dataset: 'cifar10', input: path.join(DEMO, 'shapes'), out: path.join(dir, 'img') });
  assert.deepEqual(img.rows, { train: 240, test: 60 });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  describeSchema, fixedBatch, fromIpc, imageSchema, latentSchema, lmBatch, lmSchema, readFixed, readLm, toIpc,
} from '../../src/data/arrow.js';
import { ArrowFileWriter, Dataset } from '../../src/data/arrow-file.js';
import { UserError } from '../../src/errors.js';
import { tmpDir } from '../helpers.js';

const lmRows = (n: number) => Array.from({ length: n }, (_, i) => ({
  inputIds: Int32Array.from({ length: 1 + (i % 7) }, (_, k) => 1 + i * 10 + k),
  labels: Int32Array.from({ length: 1 + (i % 7) }, (_, k) => (k < 2 ? -100 : 1 + i * 10 + k)),
}));

async function writeLm(file: string, n: number, perBatch: number): Promise<void> {
  const schema = lmSchema('llama-2');
  const w = new ArrowFileWriter(file, schema);
  const rows = lmRows(n);
  for (let at = 0; at < n; at += perBatch) w.write(lmBatch(schema, rows.slice(at, at + perBatch)));
  await w.close();
}

void test('schemas carry docs/architecture.md#datasets types and metadata', () => {
  const lm = lmSchema('llama-2');
  assert.deepEqual(lm.fields.map(String), ['input_ids: List<Int32>', 'labels: List<Int32>', 'length: Int32']);
  assert.equal(lm.metadata.get('onelora.tokenizer'), 'llama-2');
  const im = imageSchema(4, 5, ['a', 'b']);
  assert.deepEqual(im.fields.map(String), ['image: FixedSizeList[60]<Uint8>', 'label: Int32']);
  assert.deepEqual(describeSchema(im), { kind: 'image', height: 4, width: 5, classes: ['a', 'b'] });
  const la = latentSchema([4, 2, 2], ['x']);
  assert.deepEqual(describeSchema(la), { kind: 'latent', latentShape: [4, 2, 2], classes: ['x'] });
});

void test('IPC round trip of LM, image and latent batches keeps rows and metadata', () => {
  const lm = lmBatch(lmSchema('tok'), lmRows(9));
  const back = fromIpc(toIpc(lm));
  assert.equal(back.schema.metadata.get('onelora.tokenizer'), 'tok');
  assert.deepEqual(readLm(back).inputIds.map((a) => [...a]), readLm(lm).inputIds.map((a) => [...a]));
  assert.deepEqual(readLm(back).labels.map((a) => [...a]), readLm(lm).labels.map((a) => [...a]));
  const im = fixedBatch(imageSchema(2, 2, ['a', 'b']), Uint8Array.from({ length: 36 }, (_, i) => i * 7), Int32Array.from([0, 1, 1]));
  const imBack = readFixed(fromIpc(toIpc(im)), 'image');
  assert.deepEqual([...imBack.values], [...readFixed(im, 'image').values]);
  assert.deepEqual([...imBack.labels], [0, 1, 1]);
  const la = fixedBatch(latentSchema([2, 1, 1], []), Float32Array.from([0.5, -1, 2.25, 3]), Int32Array.from([4, 5]));
  assert.deepEqual([...readFixed(fromIpc(toIpc(la)), 'latent').values], [0.5, -1, 2.25, 3]);
  assert.throws(() => fromIpc(Uint8Array.from([1, 2, 3])));
});

void test('random access across record batches, any order, repeats allowed', async () => {
  const file = path.join(tmpDir('data'), 'train.arrow');
  await writeLm(file, 100, 16);
  const ds = Dataset.open(file);
  assert.equal(ds.numRows, 100);
  assert.equal(ds.numBatches, 7);
  const want = [99, 0, 17, 16, 15, 50, 50, 3];
  const got = readLm(ds.rows(want));
  const rows = lmRows(100);
  want.forEach((r, k) => assert.deepEqual([...got.inputIds[k]!], [...rows[r]!.inputIds]));
  assert.deepEqual([...got.lengths], want.map((r) => rows[r]!.inputIds.length));
  assert.throws(() => ds.rows([100]), RangeError);
  assert.equal(ds.rows([]).numRows, 0);
  ds.close();
  assert.deepEqual(fs.readdirSync(path.dirname(file)), ['train.arrow'], 'no temp file left');
});

void test('a truncated or corrupt Arrow file is a UserError naming the file', async () => {
  const dir = tmpDir('data');
  const file = path.join(dir, 'train.arrow');
  await writeLm(file, 50, 10);
  const bytes = fs.readFileSync(file);
  const cut = path.join(dir, 'cut.arrow');
  fs.writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.7)));
  assert.throws(() => Dataset.open(cut), (e: Error) => e instanceof UserError && e.message.startsWith(cut) && /truncated or corrupt/.test(e.message));
  const garbage = path.join(dir, 'garbage.arrow');
  fs.writeFileSync(garbage, 'hello, not arrow at all');
  assert.throws(() => Dataset.open(garbage), (e: Error) => e instanceof UserError && e.message.startsWith(garbage));
  // Body bytes of batch 2 overwritten: opening works (the footer is intact), reading it names file and rows.
  const ds0 = Dataset.open(file);
  const blk = (ds0 as unknown as { blocks: { offset: number; metaLength: number }[] }).blocks[2]!;
  ds0.close();
  const bad = Buffer.from(bytes);
  bad.fill(0xff, blk.offset, blk.offset + blk.metaLength);
  const corrupt = path.join(dir, 'corrupt.arrow');
  fs.writeFileSync(corrupt, bad);
  assert.throws(() => { const d = Dataset.open(corrupt); d.rows([25]); }, (e: Error) => e instanceof UserError && e.message.startsWith(corrupt));
  assert.throws(() => Dataset.open(path.join(dir, 'missing.arrow')), UserError);
});

void test('a schema that is not one of the three is refused naming the file', async () => {
  const file = path.join(tmpDir('data'), 'x.arrow');
  const { tableFromArrays } = await import('apache-arrow');
  const w = new ArrowFileWriter(file, tableFromArrays({ foo: Int32Array.from([1]) }).schema);
  w.write(tableFromArrays({ foo: Int32Array.from([1]) }).batches[0]!);
  await w.close();
  assert.throws(() => Dataset.open(file), (e: Error) => e instanceof UserError && e.message.startsWith(file) && /not a onelora dataset/.test(e.message));
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { readFixed } from '../../src/data/arrow.js';
import { Dataset } from '../../src/data/arrow-file.js';
import { prepare } from '../../src/data/prepare.js';
import { inspect } from '../../src/data/inspect.js';
import { writeSafetensors } from '../../src/checkpoint/safetensors.js';
import { UserError } from '../../src/errors.js';
import { tmpDir } from '../helpers.js';

/** A CIFAR record: label byte(s), then planar R, G, B with pixel value (r, g, b) = (k, 2k, 3k) mod 256 + channel marks. */
function cifarRecord(labels: number[], k: number): Buffer {
  const planes = [0, 1, 2].map((c) => Buffer.from(Array.from({ length: 1024 }, (_, p) => (k + p * (c + 1)) % 256)));
  return Buffer.concat([Buffer.from(labels), ...planes]);
}

function readSplit(file: string): { values: Uint8Array | Float32Array; labels: number[]; ds: Dataset } {
  const ds = Dataset.open(file);
  const c = readFixed(ds.rows(Array.from({ length: ds.numRows }, (_, i) => i)), ds.info.kind === 'image' ? 'image' : 'latent');
  return { values: c.values, labels: [...c.labels], ds };
}

void test('CIFAR-10 binary batches → 32×32 HWC rows, train + test', async () => {
  const dir = tmpDir('data');
  const src = path.join(dir, 'cifar-10-batches-bin');
  fs.mkdirSync(src);
  for (let b = 1; b <= 5; b++) fs.writeFileSync(path.join(src, `data_batch_${b}.bin`), Buffer.concat([0, 1, 2].map((k) => cifarRecord([(b + k) % 10], b * 10 + k))));
  fs.writeFileSync(path.join(src, 'test_batch.bin'), Buffer.concat([cifarRecord([9], 99), cifarRecord([3], 98)]));
  const out = path.join(dir, 'out');
  const rep = await prepare({ dataset: 'cifar10', input: dir, out });
  assert.deepEqual(rep.rows, { train: 15, test: 2 });
  const test = readSplit(path.join(out, 'test.arrow'));
  assert.deepEqual(test.labels, [9, 3]);
  assert.deepEqual(test.ds.info, { kind: 'image', height: 32, width: 32, classes: ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'] });
  // Pixel p of record k: (R, G, B) = (k + p, k + 2p, k + 3p) mod 256.
  for (const p of [0, 1, 33, 1023]) assert.deepEqual([...test.values.subarray(p * 3, p * 3 + 3)], [(99 + p) % 256, (99 + 2 * p) % 256, (99 + 3 * p) % 256]);
  test.ds.close();
  const ins = inspect(out);
  assert.equal(Object.values(ins.labels!).reduce((a, b) => a + b, 0), 15);
});

void test('CIFAR-100 uses the fine label; a truncated record names file and row (or is skipped and counted)', async () => {
  const dir = tmpDir('data');
  const good = Buffer.concat([cifarRecord([1, 42], 0), cifarRecord([2, 7], 1)]);
  fs.writeFileSync(path.join(dir, 'train.bin'), Buffer.concat([good, cifarRecord([0, 5], 2).subarray(0, 100)]));
  fs.writeFileSync(path.join(dir, 'test.bin'), cifarRecord([0, 99], 3));
  const out = path.join(dir, 'out');
  await assert.rejects(prepare({ dataset: 'cifar100', input: dir, out }),
    (e: Error) => e instanceof UserError && e.message.startsWith(path.join(dir, 'train.bin')) && /row 2: truncated record/.test(e.message));
  const rep = await prepare({ dataset: 'cifar100', input: dir, out, skipBad: true });
  assert.deepEqual(rep.rows, { train: 2, test: 1 });
  assert.equal(rep.skipped, 1);
  assert.deepEqual(readSplit(path.join(out, 'train.arrow')).labels, [42, 7]);
});

async function png(file: string, w: number, h: number, rgb: [number, number, number]): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toFile(file);
}

void test('imagefolder of class folders: decoded, short side scaled, center-cropped, split by seed; an unreadable image names the file', async () => {
  const dir = tmpDir('data');
  const src = path.join(dir, 'shapes');
  const colours: Record<string, [number, number, number]> = { blue: [0, 0, 255], red: [255, 0, 0] };
  for (const [c, rgb] of Object.entries(colours)) for (let i = 0; i < 5; i++) await png(path.join(src, c, `${i}.png`), 40 + i * 10, 30, rgb);
  // A wide image whose center is green and sides black: the center crop keeps only green.
  const wide = path.join(src, 'red', 'wide.png');
  await sharp({ create: { width: 90, height: 30, channels: 3, background: { r: 0, g: 0, b: 0 } } })
    .composite([{ input: { create: { width: 30, height: 30, channels: 3, background: { r: 0, g: 255, b: 0 } } }, left: 30, top: 0 }]).png().toFile(wide);
  const out = path.join(dir, 'out');
  const rep = await prepare({ dataset: 'imagefolder', input: src, out, imageSize: 16, valFraction: 0.25, seed: 1 });
  assert.equal(rep.rows.train! + rep.rows.validation!, 11);
  assert.equal(rep.rows.validation, 3);
  const all = [readSplit(path.join(out, 'train.arrow')), readSplit(path.join(out, 'validation.arrow'))];
  assert.deepEqual(all[0]!.ds.info, { kind: 'image', height: 16, width: 16, classes: ['blue', 'red'] });
  let sawGreen = false;
  for (const s of all) {
    s.labels.forEach((label, k) => {
      const px = (s.values as Uint8Array).subarray(k * 768, (k + 1) * 768);
      const mean = [0, 1, 2].map((c) => px.filter((_, i) => i % 3 === c).reduce((a, b) => a + b, 0) / 256);
      if (mean[1]! > 200) {
        sawGreen = true;
        assert.ok(mean[0]! < 30 && mean[2]! < 30, 'the center crop of the wide image is green only');
        return;
      }
      assert.deepEqual(mean.map(Math.round), label === 0 ? [0, 0, 255] : [255, 0, 0]);
    });
    s.ds.close();
  }
  assert.ok(sawGreen);
  fs.writeFileSync(path.join(src, 'blue', 'broken.png'), 'not a png');
  await assert.rejects(prepare({ dataset: 'imagefolder', input: src, out, imageSize: 16 }),
    (e: Error) => e instanceof UserError && e.message.startsWith(path.join(src, 'blue', 'broken.png')) && /unreadable image/.test(e.message));
  const skip = await prepare({ dataset: 'imagefolder', input: src, out, imageSize: 16, skipBad: true, valFraction: 0 });
  assert.equal(skip.skipped, 1);
  assert.equal(skip.rows.train, 11);
});

void test('imagefolder in the Food-101 layout uses meta/train.txt and meta/test.txt', async () => {
  const src = tmpDir('data');
  for (const [c, ids] of [['apple_pie', ['1', '2', '3']], ['pizza', ['4', '5']]] as const) {
    for (const id of ids) await png(path.join(src, 'images', c, `${id}.jpg`), 20, 20, c === 'pizza' ? [200, 10, 10] : [10, 200, 10]);
  }
  fs.mkdirSync(path.join(src, 'meta'));
  fs.writeFileSync(path.join(src, 'meta', 'classes.txt'), 'apple_pie\npizza\n');
  fs.writeFileSync(path.join(src, 'meta', 'train.txt'), 'apple_pie/1\napple_pie/2\npizza/4\n');
  fs.writeFileSync(path.join(src, 'meta', 'test.txt'), 'apple_pie/3\npizza/5\n');
  const out = path.join(tmpDir('data'), 'food');
  const rep = await prepare({ dataset: 'imagefolder', input: src, out, imageSize: 8 });
  assert.deepEqual(rep.rows, { train: 3, test: 2 });
  assert.deepEqual(readSplit(path.join(out, 'test.arrow')).labels, [0, 1]);
});

void test('latents from safetensors: [N, C, H, W] + labels, scaled, split; bad labels name file and row', async () => {
  const dir = tmpDir('data');
  const src = path.join(dir, 'lat');
  fs.mkdirSync(src);
  const make = (n: number, base: number, labels: number[]) => writeSafetensors(path.join(src, `part-${base}.safetensors`), {
    latents: { dtype: 'F32', shape: [n, 4, 2, 2], data: Float32Array.from({ length: n * 16 }, (_, i) => base + i) },
    labels: { dtype: 'I64', shape: [n], data: Int32Array.from(labels) },
  }, { num_classes: '101' });
  make(6, 0, [0, 1, 2, 3, 4, 100]);
  make(4, 1000, [5, 6, 7, 8]);
  const out = path.join(dir, 'out');
  const rep = await prepare({ dataset: 'latents', input: src, out, valFraction: 0.2, latentScale: 0.5 });
  assert.deepEqual(rep.rows, { train: 8, validation: 2 });
  const all = [readSplit(path.join(out, 'train.arrow')), readSplit(path.join(out, 'validation.arrow'))];
  assert.deepEqual(all[0]!.ds.info.latentShape, [4, 2, 2]);
  assert.equal(all[0]!.ds.info.classes!.length, 101);
  const labels = all.flatMap((s) => s.labels).sort((a, b) => a - b);
  assert.deepEqual(labels, [0, 1, 2, 3, 4, 5, 6, 7, 8, 100]);
  const row0 = all.find((s) => s.labels.includes(0))!;
  const k = row0.labels.indexOf(0);
  assert.deepEqual([...row0.values.subarray(k * 16, k * 16 + 3)], [0, 0.5, 1]);
  make(2, 5000, [3, -1]);
  await assert.rejects(prepare({ dataset: 'latents', input: src, out }),
    (e: Error) => e instanceof UserError && e.message.startsWith(path.join(src, 'part-5000.safetensors')) && /row 1: label -1/.test(e.message));
});

// `data prepare --dataset food101 --vae DIR [--flip]`: Food-101's layout to latent rows through the
// VAE, flipped copies, and resuming after an interruption without re-encoding finished batches.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { initBackend } from '../../src/backend/select.js';
import { registerData } from '../../src/cli/commands/data.js';
import { Dataset } from '../../src/data/arrow-file.js';
import { centerCropArr } from '../../src/data/image-files.js';
import { prepare } from '../../src/data/prepare.js';
import { VAE_BATCH, type LatentEncoder } from '../../src/data/vae-latents.js';
import { loadVae } from '../../src/models/vae-load.js';
import { encodeImages } from '../../src/models/vae-run.js';
import { maxAbsDiff, runCommands } from '../models/helpers.js';
import { tmpDir } from '../helpers.js';

await initBackend('wasm');
const VAE = path.join(import.meta.dirname, '..', 'fixtures', 'vae', 'current-f16');

/** A Food-101 tree: images/<class>/<id>.jpg of assorted sizes, meta/classes.txt, train.txt, test.txt. */
async function food101(perClass: number): Promise<string> {
  const root = tmpDir('food101');
  const classes = ['apple_pie', 'bibimbap'];
  fs.mkdirSync(path.join(root, 'meta'));
  const train: string[] = [];
  const testIds: string[] = [];
  for (const [c, name] of classes.entries()) {
    fs.mkdirSync(path.join(root, 'images', name), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const w = 40 + 7 * i;
      const h = 30 + 5 * i;
      const px = Buffer.alloc(w * h * 3);
      for (let k = 0; k < px.length; k++) px[k] = (k * 31 + i * 17 + c * 101) % 256;
      await sharp(px, { raw: { width: w, height: h, channels: 3 } }).jpeg().toFile(path.join(root, 'images', name, `${i}.jpg`));
      (i < perClass - 1 ? train : testIds).push(`${name}/${i}`);
    }
  }
  fs.writeFileSync(path.join(root, 'meta', 'classes.txt'), `${classes.join('\n')}\n`);
  fs.writeFileSync(path.join(root, 'meta', 'train.txt'), `${train.join('\n')}\n`);
  fs.writeFileSync(path.join(root, 'meta', 'test.txt'), `${testIds.join('\n')}\n`);
  return root;
}

function rows(file: string): { z: Float32Array[]; y: number[] } {
  const ds = Dataset.open(file);
  const b = ds.rows(Array.from({ length: ds.numRows }, (_, i) => i));
  const per = (ds.info.latentShape ?? []).reduce((a, v) => a * v, 1);
  const vals = b.getChild('latent')!.data[0]!.children[0]!.values as Float32Array;
  const y = Array.from(b.getChild('label')!.toArray() as Int32Array);
  ds.close();
  return { z: y.map((_, i) => vals.slice(i * per, (i + 1) * per)), y };
}

test('food101 --vae --flip: centre-cropped images encoded × scaling_factor, each followed by its mirror', async () => {
  const input = await food101(2);
  const out = path.join(tmpDir('food101'), 'latents');
  await new Promise((r) => setTimeout(r, 100));
  const r = await runCommands([registerData], 'data', 'prepare', '--dataset', 'food101', '--input', input, '--vae', VAE, '--image-size', '16', '--flip', '--out', out, '--json');
  assert.equal(r.code, 0, r.err);
  const train = rows(path.join(out, 'train.arrow'));
  assert.deepEqual(train.y, [0, 0, 1, 1]);
  const vae = loadVae(VAE);
  const img = await centerCropArr(path.join(input, 'images', 'bibimbap', '0.jpg'), 16);
  const mirror = new Uint8Array(img.data.length);
  for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) mirror.set(img.data.subarray((y * 16 + x) * 3, (y * 16 + x) * 3 + 3), (y * 16 + 15 - x) * 3);
  const want = await encodeImages(vae, Buffer.concat([img.data, mirror]), 2, 16, 16, { mode: 'mean', seed: 0 });
  vae.dispose();
  assert.ok(maxAbsDiff(train.z[2]!, want.subarray(0, 256)) < 1e-6);
  assert.ok(maxAbsDiff(train.z[3]!, want.subarray(256)) < 1e-6);
  assert.equal(rows(path.join(out, 'test.arrow')).y.length, 4);
  assert.ok(!fs.existsSync(`${out}.partial`), 'the partial batches are removed once the dataset is whole');
});

test('an interrupted prepare resumes: finished batches are reused, not encoded again', async () => {
  const input = await food101(VAE_BATCH + 2); // 34 train images: batches of 16, 16, 2
  const out = path.join(tmpDir('food101'), 'latents');
  let calls = 0;
  let failAt = 2;
  const encoder: LatentEncoder = {
    id: 'mean-of-pixels',
    latentShape: () => [1, 1, 1],
    encode: (px, n, size) => {
      if (++calls === failAt) throw new Error('interrupted');
      return Promise.resolve(Float32Array.from({ length: n }, (_, i) => px.subarray(i * size * size * 3, (i + 1) * size * size * 3).reduce((a, v) => a + v, 0)));
    },
  };
  const opts = { dataset: 'food101' as const, input, out, imageSize: 8 };
  await assert.rejects(prepare(opts, { encoder, flip: false }), /interrupted/);
  assert.equal(fs.readdirSync(`${out}.partial`).length, 1, 'the first batch was kept');
  calls = 0;
  failAt = -1;
  await prepare(opts, { encoder, flip: false });
  assert.equal(calls, 3, 'train batches 2 and 3 and the test batch: the first was reused');
  const resumed = rows(path.join(out, 'train.arrow'));
  calls = 0;
  const clean = path.join(tmpDir('food101'), 'clean');
  await prepare({ ...opts, out: clean }, { encoder, flip: false });
  assert.deepEqual(resumed, rows(path.join(clean, 'train.arrow')));
});

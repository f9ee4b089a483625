// `data prepare --dataset depth` on tiny fake datasets in each layout people download, written by
// Python (PIL 16-bit PNGs, numpy .npy): NYU (BTS split file and the folder walk), KITTI (Eigen split
// file, KB crop, 0 = no measurement, a "None" row), DIODE (.npy depth + mask); bad rows named, or
// skipped and counted with --skip-bad.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Dataset } from '../../src/data/arrow-file.js';
import { readDepth } from '../../src/data/arrow.js';
import { readNpy } from '../../src/data/depth-prepare.js';
import { inspect } from '../../src/data/inspect.js';
import { prepare } from '../../src/data/prepare.js';
import { UserError } from '../../src/errors.js';
import { tmpDir } from '../helpers.js';

const MAKE = String.raw`
import os, sys, numpy as np
from PIL import Image
root = sys.argv[1]
rng = np.random.default_rng(3)
def rgb(path, h, w):
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
def d16(path, a):
    Image.fromarray(a.astype(np.uint16)).save(path)
nyu = os.path.join(root, 'nyu', 'kitchen'); os.makedirs(nyu)
for i in range(3):
    rgb(os.path.join(nyu, f'rgb_{i:05d}.jpg'), 480, 640)
    mm = np.full((480, 640), 1000 * (i + 1)); mm[0, 0] = 0; mm[1, 1] = 1234
    d16(os.path.join(nyu, f'sync_depth_{i:05d}.png'), mm)
with open(os.path.join(root, 'nyu_test_files.txt'), 'w') as f:
    f.write('/kitchen/rgb_00000.jpg /kitchen/sync_depth_00000.png 518.8579\nkitchen/rgb_00002.jpg kitchen/sync_depth_00002.png 518.8579\n')
k = os.path.join(root, 'kitti'); os.makedirs(os.path.join(k, 'img')); os.makedirs(os.path.join(k, 'gt'))
for i in range(2):
    rgb(os.path.join(k, 'img', f'{i}.png'), 375, 1242)
    v = np.zeros((375, 1242)); v[-1, 13] = 256 * 12.5; v[23, 13] = 256 * 40
    d16(os.path.join(k, 'gt', f'{i}.png'), v)
with open(os.path.join(root, 'eigen_test_files.txt'), 'w') as f:
    f.write('img/0.png gt/0.png 721.5\nimg/1.png None 721.5\nimg/1.png gt/1.png 721.5\n')
dd = os.path.join(root, 'diode', 'outdoor', 'scene_1'); os.makedirs(dd)
for i in range(2):
    rgb(os.path.join(dd, f'{i}.png'), 768, 1024)
    np.save(os.path.join(dd, f'{i}_depth.npy'), np.full((768, 1024, 1), 3.5 + i, dtype=np.float32))
    m = np.ones((768, 1024), dtype=np.float32); m[5, 7] = 0
    np.save(os.path.join(dd, f'{i}_depth_mask.npy'), m)
rgb(os.path.join(dd, '9.png'), 768, 1024)  # no depth file: a bad row
np.save(os.path.join(root, 'f8.npy'), np.arange(6, dtype=np.float64).reshape(2, 3) / 4)
`;

const root = tmpDir('depth-data');
const made = spawnSync('/usr/bin/python3', ['-c', MAKE, root], { encoding: 'utf8' });
assert.equal(made.status, 0, made.stderr);

function rows(file: string): { n: number; h: number; w: number; format: string; c: ReturnType<typeof readDepth> } {
  const ds = Dataset.open(file);
  const ids = Array.from({ length: ds.numRows }, (_, i) => i);
  const out = { n: ds.numRows, h: ds.info.height!, w: ds.info.width!, format: ds.info.depthFormat!, c: readDepth(ds.rows(ids)) };
  ds.close();
  return out;
}

void test('nyu: a BTS split file -> test.arrow; millimetres to metres, 0 = invalid', async () => {
  const out = path.join(root, 'out-nyu');
  const r = await prepare({ dataset: 'depth', format: 'nyu', input: path.join(root, 'nyu'), splitFile: path.join(root, 'nyu_test_files.txt'), out });
  assert.deepEqual(r.rows, { test: 2 });
  const t = rows(path.join(out, 'test.arrow'));
  assert.deepEqual([t.n, t.h, t.w, t.format], [2, 480, 640, 'nyu']);
  const px = 480 * 640;
  assert.equal(t.c.valid[0], 0);
  assert.ok(Math.abs(t.c.depth[641]! - 1.234) < 1e-6);
  assert.equal(t.c.depth[px + 5], 3, 'the second line is rgb_00002: 3 m');
  assert.equal(t.c.valid.subarray(0, px).reduce((a, b) => a + b, 0), px - 1);
  const r2 = inspect(out);
  assert.equal(r2.kind, 'depth');
  assert.deepEqual(r2.example, { height: 480, width: 640, format: 'nyu', valid: 1, depth_m: [1, Math.fround(1.234)] });
});

void test('nyu without a split file: the folder walk, train/validation by --val-fraction', async () => {
  const r = await prepare({ dataset: 'depth', format: 'nyu', input: path.join(root, 'nyu'), out: path.join(root, 'out-nyu2'), valFraction: 0.34 });
  assert.deepEqual(r.rows, { train: 2, validation: 1 });
});

void test('kitti: Eigen split file, KB crop to 352 × 1216, value / 256 m; a None row is bad', async () => {
  const args = { dataset: 'depth' as const, format: 'kitti', input: path.join(root, 'kitti'), splitFile: path.join(root, 'eigen_test_files.txt'), out: path.join(root, 'out-kitti') };
  await assert.rejects(prepare(args), (e: unknown) => e instanceof UserError && /eigen_test_files\.txt: line 2: row 1: no depth in the split file/.test(e.message));
  const r = await prepare({ ...args, skipBad: true });
  assert.deepEqual([r.rows, r.skipped], [{ test: 2 }, 1]);
  const t = rows(path.join(args.out, 'test.arrow'));
  assert.deepEqual([t.h, t.w, t.format], [352, 1216, 'kitti']);
  // KB crop: top = 375 − 352 = 23, left = (1242 − 1216) / 2 = 13.
  assert.equal(t.c.depth[0], 40);
  assert.equal(t.c.depth[351 * 1216], 12.5);
  assert.equal(t.c.valid.subarray(0, 352 * 1216).reduce((a, b) => a + b, 0), 2);
});

void test('diode: .npy depth and mask; a missing depth file is named, or skipped', async () => {
  const args = { dataset: 'depth' as const, format: 'diode', input: path.join(root, 'diode'), out: path.join(root, 'out-diode'), valFraction: 0 };
  await assert.rejects(prepare(args), (e: unknown) => e instanceof UserError && /9\.png: row 2: missing depth file .*9_depth\.npy/.test(e.message));
  const r = await prepare({ ...args, skipBad: true });
  assert.deepEqual([r.rows.train, r.skipped], [2, 1]);
  const t = rows(path.join(args.out, 'train.arrow'));
  assert.deepEqual([t.h, t.w, t.format], [768, 1024, 'diode']);
  assert.equal(t.c.depth[768 * 1024], 4.5);
  assert.equal(t.c.valid[5 * 1024 + 7], 0);
  assert.equal(t.c.valid[5 * 1024 + 8], 1);
});

void test('readNpy reads float64 too; --format is required with --dataset depth', async () => {
  const a = readNpy(path.join(root, 'f8.npy'));
  assert.deepEqual(a.shape, [2, 3]);
  assert.deepEqual(Array.from(a.data), [0, 0.25, 0.5, 0.75, 1, 1.25]);
  await assert.rejects(prepare({ dataset: 'depth', input: path.join(root, 'nyu'), out: path.join(root, 'x') }), /--format: 'undefined' is not one of nyu, kitti, diode/);
  assert.ok(fs.existsSync(root));
});

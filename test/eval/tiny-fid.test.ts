// The demo's random-feature FID network (src/eval/tiny-fid.ts) against an independent torch build of
// the same network (scripts/make-tiny-fid-fixtures.py: pad, stride-2 convs, ReLU, 2 × 2 average
// pool, in float64) on the fixture's weights, and its FID against the fixture's eigh-based FID.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { initBackend } from '../../src/backend/select.js';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { frechetDistance } from '../../src/eval/fid.js';
import { TinyFidNet } from '../../src/eval/tiny-fid.js';

await initBackend('wasm');
const fx = readSafetensors(path.join(import.meta.dirname, '..', 'fixtures', 'fid', 'tiny-fid.safetensors')).tensors;
const f32 = (name: string): Float32Array => Float32Array.from(fx.get(name)!.data as ArrayLike<number>);
const u8 = (name: string): Uint8Array => Uint8Array.from(fx.get(name)!.data as ArrayLike<number>);

void test('tiny FID features equal the torch reference at 16 × 16 and 32 × 32, and its FID the reference FID', async () => {
  const net = new TinyFidNet([f32('w0'), f32('w1'), f32('w2')]);
  try {
    for (const [img, feat, n, size] of [['a', 'feat_a', 12, 16], ['c', 'feat_c', 3, 32]] as const) {
      const got = await net.features(u8(img), n, size, size);
      const want = f32(feat);
      assert.equal(got.length, n * 64);
      const err = Math.max(...Array.from(got, (v, i) => Math.abs(v - want[i]!) / Math.max(1, Math.abs(want[i]!))));
      assert.ok(err < 1e-5, `${img}: max error ${err}`);
    }
    const fid = frechetDistance(await net.stats(u8('a'), 12, 16, 16), await net.stats(u8('b'), 12, 16, 16));
    const want = f32('fid_ab')[0]!;
    assert.ok(Math.abs(fid - want) < 1e-4 * want, `FID ${fid} vs ${want}`);
    assert.ok(Math.abs(frechetDistance(await net.stats(u8('a'), 12, 16, 16), await net.stats(u8('a'), 12, 16, 16))) < 1e-9, 'a set against itself');
  } finally {
    net.dispose();
  }
});

void test('the fixed network: 64 features, the same on every construction; sides not a multiple of 16 are refused', async () => {
  const px = Uint8Array.from({ length: 2 * 32 * 32 * 3 }, (_, i) => (i * 37) % 256);
  const a = new TinyFidNet();
  const b = new TinyFidNet();
  try {
    const fa = await a.features(px, 2, 32, 32);
    assert.equal(fa.length, 128);
    assert.deepEqual(fa, await b.features(px, 2, 32, 32));
    assert.ok(fa.some((v) => v > 0), 'ReLU features are not all zero');
    await assert.rejects(a.features(new Uint8Array(24 * 24 * 3), 1, 24, 24), /multiples of 16/);
  } finally {
    a.dispose();
    b.dispose();
  }
});

// Depth Anything against scripts/make-depth-fixtures.py (an independent float64 torch forward):
// the same tiny random weights in the original layout (safetensors and the .pth through the
// restricted unpickler) and in transformers' layout; square input at the trained grid, and a
// non-square one where the two position-table rules differ.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { initBackend, tf } from '../../src/backend/select.js';
import { DepthAnythingModel } from '../../src/models/depth-anything.js';
import { loadModel } from '../../src/models/registry.js';
import { tmpDir } from '../helpers.js';
import { FIXTURES } from './helpers.js';

await initBackend('wasm');

interface Case { shape: [number, number]; pixels: number[]; original: number[]; hf: number[]; metric20_hf: number[] }
const E = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'depth.json'), 'utf8')) as Record<'square' | 'wide', Case>;

async function load(dir: string): Promise<DepthAnythingModel> {
  const l = await loadModel(dir);
  assert.equal(l.family, 'depth');
  return l.model as DepthAnythingModel;
}

/** max |a − b| / max |b| */
function relErr(got: Float32Array, want: number[]): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < want.length; i++) {
    d = Math.max(d, Math.abs(got[i]! - want[i]!));
    m = Math.max(m, Math.abs(want[i]!));
  }
  return d / m;
}

async function depthOf(model: DepthAnythingModel, c: Case): Promise<Float32Array> {
  const y = tf.tidy(() => model.depth(tf.tensor4d(c.pixels, [1, c.shape[0], c.shape[1], 3])));
  assert.deepEqual(y.shape, [1, c.shape[0], c.shape[1]]);
  const v = (await y.data()) as Float32Array;
  y.dispose();
  return v;
}

const LAYOUTS = [['depth-orig', 'original', 'original'], ['depth-pth', 'original', 'original'], ['depth-hf', 'hf', 'hf']] as const;

for (const [dir, layout, rule] of LAYOUTS) {
  void test(`${dir}: ${layout} layout matches the torch depth maps within 1e-4 relative`, async () => {
    const model = await load(path.join(FIXTURES, dir));
    assert.equal(model.config.keyLayout, layout);
    assert.equal(model.linears().length, layout === 'hf' ? 4 * 6 : 4 * 4);
    for (const key of ['square', 'wide'] as const) {
      const err = relErr(await depthOf(model, E[key]), E[key][rule]);
      console.log(`${dir} ${key} (${E[key].shape.join('×')}): max relative error ${err.toExponential(2)}`);
      assert.ok(err < 1e-4, `${dir} ${key}: ${err}`);
    }
    model.dispose();
  });
}

void test('the two position-table rules differ off the trained grid, agree on it', () => {
  assert.ok(relErr(Float32Array.from(E.wide.original), E.wide.hf) > 1e-3);
  assert.ok(relErr(Float32Array.from(E.square.original), E.square.hf) < 1e-7);
});

void test('metric head: sigmoid × max_depth from config.json', async () => {
  const dir = tmpDir('depth-metric');
  const cfg = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'depth-hf', 'config.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, depth_estimation_type: 'metric', max_depth: 20 }));
  fs.copyFileSync(path.join(FIXTURES, 'depth-hf', 'model.safetensors'), path.join(dir, 'model.safetensors'));
  const model = await load(dir);
  const err = relErr(await depthOf(model, E.wide), E.wide.metric20_hf);
  assert.ok(err < 1e-4, `metric: ${err}`);
  model.dispose();
});

void test('errors name the file: an original .pth of unknown width without config.json, a stray tensor, a layout without config', async () => {
  const bare = tmpDir('depth-bare');
  fs.copyFileSync(path.join(FIXTURES, 'depth-pth', 'depth_anything_tiny.pth'), path.join(bare, 'depth_anything_tiny.pth'));
  await assert.rejects(loadModel(bare), /depth_anything_tiny\.pth: an encoder of width 32 is not ViT-S\/B\/L; give a config\.json/);
  const hfNoCfg = tmpDir('depth-nocfg');
  fs.copyFileSync(path.join(FIXTURES, 'depth-hf', 'model.safetensors'), path.join(hfNoCfg, 'model.safetensors'));
  fs.writeFileSync(path.join(hfNoCfg, 'config.json'), JSON.stringify({ model_type: 'depth_anything' }));
  await assert.rejects(loadModel(hfNoCfg), /backbone_config' is missing/);
  const swapped = tmpDir('depth-swapped');
  fs.copyFileSync(path.join(FIXTURES, 'depth-orig', 'model.safetensors'), path.join(swapped, 'model.safetensors'));
  const cfg = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'depth-orig', 'config.json'), 'utf8')) as { neck_hidden_sizes: number[] };
  fs.writeFileSync(path.join(swapped, 'config.json'), JSON.stringify({ ...cfg, neck_hidden_sizes: [8, 16, 32, 64] }));
  await assert.rejects(loadModel(swapped), /depth_head\.projects\.3\.weight' has shape \[32, 32, 1, 1\], the config needs \[64, 32, 1, 1\]/);
});

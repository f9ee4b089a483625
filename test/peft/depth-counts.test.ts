// The 1LoRA paper's Depth Anything ViT-L/14 counts (Tables S2 and S11, plain parameter counts),
// from the describe-only preset `depth-anything-vitl14` (original layout: fused qkv, 96 encoder
// linears, a DPT head of convolutions only), and once through the CLI as a user runs it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { describeModel } from '../../src/models/registry.js';
import { countTrainable } from '../../src/peft/count.js';

const ROWS: [spec: string, trainable: number][] = [
  ['1lora', 221_184], // Σ out features: 24 × (3072 + 1024 + 4096 + 1024)
  ['bitfit', 221_184],
  ['difffit-gamma', 221_184],
  ['lora:r=1', 393_216], // Σ (in + out)
  ['dora:r=1', 614_400], // LoRA + the magnitude vector
  ['vera:r=1', 221_280], // λ_d + λ_b (r = 1) per layer
  ['mora1', 220_056],
  ['mora6', 217_440],
  ['all', 335_315_649], // 335.32M
  ['norms', 100_352], // 49 LayerNorms × 2 × 1024; LayerScale is not a norm
  // The paper's DiffFit row for Depth Anything is γ + norms (its ViT and DiT rows add β).
  ['difffit-gamma+norms', 321_536],
  ['1lora+bitfit', 442_368],
  ['1lora+difffit-gamma', 442_368],
  ['1lora+norms', 321_536],
  ['1lora+bitfit+norms', 542_720],
  ['1lora+difffit-gamma+norms', 542_720],
  ['1lora+bitfit+difffit-gamma', 663_552],
  ['1lora+bitfit+difffit-gamma+norms', 763_904],
];

void test('Depth Anything ViT-L/14: the 18 counts of Tables S2 and S11', async () => {
  const desc = await describeModel('depth-anything-vitl14');
  assert.equal(desc.family, 'depth');
  assert.equal(desc.linears.length, 96);
  assert.equal(desc.norms.length, 49);
  assert.deepEqual(desc.headPaths, []);
  for (const [spec, want] of ROWS) assert.equal(countTrainable(desc, spec).trainable, want, spec);
  assert.equal((countTrainable(desc, 'all').trainable / 1e6).toFixed(2), '335.32');
});

void test('ViT-S/B/L totals: the published sizes (24.8M, 97.5M, 335.3M)', async () => {
  const totals = await Promise.all(['vits14', 'vitb14', 'vitl14'].map(async (s) => (await describeModel(`depth-anything-${s}`)).totalParams));
  assert.deepEqual(totals, [24_785_089, 97_470_785, 335_315_649]);
  // ViT-L: encoder 304,368,640 (mask token included) + DPT head 30,947,009.
  const l = await describeModel('depth-anything-vitl14');
  const encoder = l.linears.reduce((a, x) => a + x.inFeatures * x.outFeatures + x.outFeatures, 0) + l.norms.length * 2048
    + 24 * 2 * 1024 + 1024 * 3 * 14 * 14 + 1024 + 1024 + 1024 + 1370 * 1024;
  assert.equal(encoder, 304_368_640);
  assert.equal(l.totalParams - encoder, 30_947_009);
});

void test('onelora params --model depth-anything-vitl14 --method lora --rank 1 --json', () => {
  const r = spawnSync(process.execPath, ['bin/onelora.js', 'params', '--model', 'depth-anything-vitl14', '--method', 'lora', '--rank', '1', '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  assert.equal(j.trainable, 393_216);
  assert.equal(j.layers, 96);
  assert.deepEqual(j.targets, ['fc1', 'fc2', 'proj', 'qkv']);
  assert.equal(j.total_params, 335_315_649);
});

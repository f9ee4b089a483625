// Depth metrics, SiLog and the input sizing against numpy / Python written here from the protocol
// (BTS's compute_errors, transformers' get_resize_output_image_size, the original code's
// lower-bound Resize): a different language, the same definitions.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { initBackend, tf } from '../../src/backend/select.js';
import { inputSize, roundHalfEven } from '../../src/data/depth-images.js';
import { PROTOCOLS, imageMetrics } from '../../src/eval/depth.js';
import { siLog } from '../../src/eval/depth-run.js';
import { siLogSum } from '../../src/train/tasks/depth.js';

await initBackend('wasm');

function py(code: string, input: unknown): unknown {
  const r = spawnSync('/usr/bin/python3', ['-c', code], { input: JSON.stringify(input), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const METRICS_PY = String.raw`
import json, sys, numpy as np
a = json.load(sys.stdin)
h, w = a['h'], a['w']
gt = np.array(a['gt']).reshape(h, w); pred = np.array(a['pred']).reshape(h, w); valid = np.array(a['valid']).reshape(h, w) > 0
m = valid & (gt > 1e-3) & (gt < 80)
crop = np.zeros_like(m)
crop[int(0.40810811 * h):int(0.99189189 * h), int(0.03594771 * w):int(0.96405229 * w)] = True
m &= crop
g, p = gt[m], pred[m]
if a['relative']: p = p * np.median(g) / np.median(p)
p = np.clip(p, 1e-3, 80)
t = np.maximum(g / p, p / g)
print(json.dumps({'abs_rel': float(np.mean(np.abs(g - p) / g)), 'rmse': float(np.sqrt(np.mean((g - p) ** 2))), 'log10': float(np.mean(np.abs(np.log10(g) - np.log10(p)))),
                  'd1': float((t < 1.25).mean()), 'd2': float((t < 1.25 ** 2).mean()), 'd3': float((t < 1.25 ** 3).mean())}))
`;

void test('AbsRel, RMSE, log10, δ1–3 on the KITTI protocol (Garg crop, 80 m cap), metric and median-scaled', () => {
  const h = 20;
  const w = 30;
  let s = 7;
  const r = (): number => ((s = (s * 16807) % 2147483647) / 2147483647);
  const gt = Array.from({ length: h * w }, () => (r() < 0.1 ? 95 : 1 + 60 * r()));
  const pred = gt.map((g) => g * (0.6 + 0.9 * r()) + 0.5);
  const valid = gt.map(() => (r() < 0.8 ? 1 : 0));
  for (const relative of [false, true]) {
    const want = py(METRICS_PY, { h, w, gt, pred, valid, relative }) as Record<string, number>;
    const got = imageMetrics(pred, gt, valid, h, w, PROTOCOLS.kitti!, relative)!;
    for (const k of Object.keys(want)) assert.ok(Math.abs(got[k as keyof typeof got] - want[k]!) < 1e-9, `${k}: ${got[k as keyof typeof got]} vs ${want[k]}`);
  }
});

void test('sizes: round half to even, lower bound (original) and minimal scaling (transformers)', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, 4, 2, 3]);
  const cases = [[480, 640], [375, 1242], [352, 1216], [768, 1024], [56, 56], [427, 561], [100, 63], [518, 518], [259, 777]];
  const want = py(String.raw`
import json, sys, math, numpy as np
def mult(x, m, lo=0):
    y = int(np.round(x / m) * m)
    return int(math.ceil(x / m) * m) if y < lo else y
out = []
for h, w in json.load(sys.stdin):
    s = max(518 / h, 518 / w)
    lb = [mult(s * h, 14, 518), mult(s * w, 14, 518)]
    sh, sw = 518 / h, 518 / w
    if abs(1 - sw) < abs(1 - sh): sh = sw
    else: sw = sh
    out.append([lb, [round(sh * h / 14) * 14, round(sw * w / 14) * 14]])
print(json.dumps(out))
`, cases) as [number[], number[]][];
  cases.forEach(([h, w], i) => {
    assert.deepEqual(inputSize(h!, w!, 518, 'lower-bound'), want[i]![0], `lower-bound ${h}×${w}`);
    assert.deepEqual(inputSize(h!, w!, 518, 'minimal'), want[i]![1], `minimal ${h}×${w}`);
  });
});

void test('SiLog: the tensor loss (training) and the per-image one (evaluation) agree; λ = 1 is scale-invariant', async () => {
  const n = 2 * 4 * 5;
  const pred = Array.from({ length: n }, (_, i) => 1 + ((i * 37) % 11) / 3);
  const gt = Array.from({ length: n }, (_, i) => 2 + ((i * 13) % 7) / 2);
  const mask = Array.from({ length: n }, (_, i) => (i % 5 === 0 ? 0 : 1));
  const t = siLogSum(tf.tensor3d(pred, [2, 4, 5]), tf.tensor3d(gt, [2, 4, 5]), tf.tensor3d(mask, [2, 4, 5]), 0.85);
  const js = [0, 1].reduce((a, b) => a + siLog(pred.slice(b * 20, b * 20 + 20), gt.slice(b * 20, b * 20 + 20), mask.slice(b * 20, b * 20 + 20), 0.85)!, 0);
  assert.ok(Math.abs((await t.data())[0]! - js) < 1e-5);
  const scaled = siLog(pred.map((p) => 3 * p), gt, mask, 1)!;
  assert.ok(Math.abs(scaled - siLog(pred, gt, mask, 1)!) < 1e-9);
});

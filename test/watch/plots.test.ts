// Every plot kind rendered from a small fixture: its size, that every method has its label, that
// no two labels' boxes overlap (the boxes vega itself computes for its scenegraph), and that the
// axes end where the data ends.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { ablationGrid, type MethodResult } from '../../src/bench/methods.js';
import type { PcaResult } from '../../src/bench/pca.js';
import { bubbleSpec, pcaSpec } from '../../src/bench/report.js';
import { overlaps, render, writeChart, type TextBox } from '../../src/watch/plot-render.js';
import { tmpDir } from '../helpers.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const crowded = JSON.parse(fs.readFileSync(path.join(ROOT, 'test/fixtures/plots/crowded.json'), 'utf8')) as { task: string; results: MethodResult[] };

function assertNoOverlap(labels: readonly TextBox[]): void {
  for (let i = 0; i < labels.length; i++) {
    for (let j = i + 1; j < labels.length; j++) {
      const a = labels[i]!;
      const b = labels[j]!;
      assert.ok(!overlaps(a, b), `'${a.text}' [${a.x1.toFixed(0)},${a.y1.toFixed(0)} ${a.x2.toFixed(0)},${a.y2.toFixed(0)}] overlaps '${b.text}' [${b.x1.toFixed(0)},${b.y1.toFixed(0)} ${b.x2.toFixed(0)},${b.y2.toFixed(0)}]`);
    }
  }
}

test('bubble plot of a crowded bench: every method labelled once, no two labels overlap, memory bars not clipped', async () => {
  const r = await render(bubbleSpec(crowded.task, crowded.results));
  assert.ok(r.width >= 600 && r.width <= 1000, `width ${r.width}`);
  assert.ok(r.height >= 500 && r.height <= 900, `height ${r.height}`);
  for (const m of crowded.results) assert.equal(r.labels.filter((l) => l.text === m.method).length, 1, m.method);
  assertNoOverlap(r.labels);
  // The tallest bar's value label sits inside the chart (a clipped bar would push it above its panel's top).
  const dora = r.labels.find((l) => l.text === '652');
  assert.ok(dora, 'the memory bars carry their values');
  const panelTop = Math.min(...r.axisLabels.filter((l) => l.text === '0').map((l) => l.y1));
  assert.ok(dora.y1 > 0 && dora.y1 < panelTop);
});

test('the ablation grid: 15 methods, short labels, 20 distinct colours, a time axis from 0 up', async () => {
  const methods = ablationGrid();
  const rows = methods.map((method, i): MethodResult => ({
    method, time_to_best_s: 0.3 + (i % 5) * 0.25, metric: 'accuracy', value: [0.85, 0.8667, 0.8833][i % 3]!, lower_is_better: false,
    best_step: 10, peak_bytes: 19e6 + i * 1e5, trainable: 896 * (1 + method.split('+').length), total_wall_s: 5,
  }));
  const spec = bubbleSpec('tiny-vit', rows, { short: true });
  const r = await render(spec);
  assert.ok(r.width >= 700 && r.height >= 600, `${r.width} × ${r.height}`);
  assert.ok(r.labels.some((l) => l.text === '1lora+β+γ+norms'));
  assertNoOverlap(r.labels);
  const times = r.axisLabels.map((l) => Number(l.text)).filter((v) => Number.isFinite(v) && v < 0);
  assert.deepEqual(times, [], 'no negative tick');
  assert.ok(JSON.stringify(spec).includes('tableau20'));
});

test('PCA plot: 2 × 2 panels, each x-axis ending at its layer\'s number of components', async () => {
  const sims = (n: number) => ({ summation: Array.from({ length: n }, (_, i) => 0.05 + 0.01 * Math.sin(i)), random: Array.from({ length: n }, () => 0.06), learned: Array.from({ length: n }, (_, i) => 0.4 / (i + 1)) });
  const pca: PcaResult = { task: 'tiny', steps: 3, similarity: { qkv: sims(32), attn_out: sims(32), mlp_first: sims(32), mlp_second: sims(88) } };
  const r = await render(pcaSpec(pca));
  assert.ok(r.height >= 500, `height ${r.height}`);
  assert.ok(r.width >= 700, `width ${r.width}`);
  const ticks = r.axisLabels.map((l) => Number(l.text.replace(/,/g, ''))).filter(Number.isFinite);
  assert.ok(Math.max(...ticks) <= 88, `ticks up to ${Math.max(...ticks)}`);
});

test('writeChart writes the PNG at twice the chart\'s size, and the SVG beside it', async () => {
  const dir = tmpDir('plots');
  const spec = bubbleSpec(crowded.task, crowded.results);
  const files = await writeChart(spec, path.join(dir, 'b.png'), { both: true });
  assert.deepEqual(files.map((f) => path.basename(f)), ['b.svg', 'b.png']);
  const meta = await sharp(files[1]!).metadata();
  const r = await render(spec);
  assert.ok(Math.abs(meta.width! - 2 * r.width) <= 4, `${meta.width} vs ${r.width}`);
});

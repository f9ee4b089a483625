// The report of `onelora bench methods`: a markdown table of the four axes and the paper's bubble
// plot (x = wall time to the best validation metric, y = the metric, bubble area = trainable
// parameters, memory as bars beneath), and the PCA figure, drawn through src/watch/plot-render.ts.
import fs from 'node:fs';
import path from 'node:path';
import type * as vegaLite from 'vega-lite';
import { placeLabels } from '../watch/plot-labels.js';
import { writeChart } from '../watch/plot-render.js';
import { FID_HEADER, fidCell, type MethodResult } from './methods.js';
import type { PcaResult } from './pca.js';

const mb = (bytes: number): number => Math.round(bytes / 1e5) / 10;

export function markdownTable(task: string, rows: readonly MethodResult[]): string {
  const metric = rows[0]?.metric ?? 'metric';
  const dir = rows[0]?.lower_is_better ? '↓' : '↑';
  // The new task head is the same for every method of a task, so it gets its own column, not a share of the bubble.
  const withHead = rows.some((r) => (r.head ?? 0) > 0);
  const fmt = (n: number): string => n.toLocaleString('en-US');
  // A diffusion task's sample FID (after the last step) beside the loss, the paper's metric for DiT.
  const withFid = rows.some((r) => r.fid !== undefined);
  const lines = [
    `| method | time to best (s) | best ${metric} ${dir} |${withFid ? ` ${FID_HEADER} |` : ''} step | peak memory (MB) | trainable params |${withHead ? ' new task head |' : ''}`,
    `|---|---:|---:|${withFid ? '---:|' : ''}---:|---:|---:|${withHead ? '---:|' : ''}`,
    ...rows.map((r) => `| ${r.method} | ${r.time_to_best_s.toFixed(1)} | ${r.value.toFixed(4)} |${withFid ? ` ${fidCell(r)} |` : ''} ${r.best_step} | ${mb(r.peak_bytes).toFixed(1)} | ${fmt(r.trainable)} |${withHead ? ` ${fmt(r.head ?? 0)} |` : ''}`),
  ];
  return `## ${task}\n\n${lines.join('\n')}\n`;
}

/** The chart's methods as labelled: the ablation grid writes β for bitfit and γ for difffit-gamma, as the paper does. */
function shortName(method: string, short: boolean): string {
  return short ? method.split('+').map((t) => ({ bitfit: 'β', 'difffit-gamma': 'γ' })[t] ?? t).join('+') : method;
}

const FONT = 10;
const AREA = [30, 2500] as const;

/** [lo, hi] of `values` widened by `margin` pixels on each side of a `px`-long axis (never below 0 when `positive`). */
function paddedDomain(values: readonly number[], px: number, margin: number, positive: boolean): [number, number] {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const span = hi - lo || Math.abs(hi) || 1;
  const perPx = span / Math.max(1, px - 2 * margin);
  const d0 = lo - margin * perPx;
  return [positive ? Math.max(0, d0) : d0, hi + margin * perPx];
}

/**
 * The vega-lite spec: bubbles above, memory bars below, one colour per method (20 distinct ones
 * past ten methods). The scales' domains are set here, so each label is placed in pixels
 * (plot-labels.ts: beside its bubble, or further out with a leader line, never over another) and
 * written back in data units.
 */
export function bubbleSpec(task: string, rows: readonly MethodResult[], opts: { short?: boolean } = {}): vegaLite.TopLevelSpec {
  const metric = rows[0]?.metric ?? 'metric';
  const better = rows[0]?.lower_is_better ? 'bottom left' : 'top left';
  const many = rows.length > 10;
  const width = many ? 680 : 560;
  const height = many ? 440 : 340;
  const maxParams = Math.max(1, ...rows.map((r) => r.trainable));
  const radius = (params: number): number => Math.sqrt((AREA[0] + (AREA[1] - AREA[0]) * Math.sqrt(params / maxParams)) / Math.PI);
  const margin = radius(maxParams) + 2 * FONT;
  const xd = paddedDomain(rows.map((r) => r.time_to_best_s), width, margin, true);
  const yd = paddedDomain(rows.map((r) => r.value), height, margin, false);
  const px = (t: number): number => ((t - xd[0]) / (xd[1] - xd[0])) * width;
  const py = (v: number): number => (1 - (v - yd[0]) / (yd[1] - yd[0])) * height;
  const names = rows.map((r) => shortName(r.method, !!opts.short));
  const points = rows.map((r, i) => ({ cx: px(r.time_to_best_s), cy: py(r.value), r: radius(r.trainable), text: names[i] as string }));
  const placed = placeLabels(points, { width, height, fontSize: FONT });
  const dataX = (x: number): number => xd[0] + (x / width) * (xd[1] - xd[0]);
  const dataY = (y: number): number => yd[0] + (1 - y / height) * (yd[1] - yd[0]);
  const values = rows.map((r, i) => {
    const p = points[i]!;
    const l = placed[i]!;
    // A leader from the bubble's edge to the nearest point of a label set further out.
    const nx = Math.max(l.box.x1, Math.min(p.cx, l.box.x2));
    const ny = Math.max(l.box.y1, Math.min(p.cy, l.box.y2));
    const gap = Math.hypot(nx - p.cx, ny - p.cy);
    const leader = gap > p.r + 6 ? { lx1: dataX(p.cx + ((nx - p.cx) * p.r) / gap), ly1: dataY(p.cy + ((ny - p.cy) * p.r) / gap), lx2: dataX(nx), ly2: dataY(ny) } : {};
    return { method: names[i], time: r.time_to_best_s, value: r.value, params: r.trainable, memory: mb(r.peak_bytes), labelX: dataX(l.x), labelY: dataY(l.y), align: l.align, ...leader };
  });
  const color = { field: 'method', type: 'nominal' as const, legend: null, sort: null, scale: { scheme: many ? 'tableau20' : 'tableau10' } };
  const x = { type: 'quantitative' as const, scale: { domain: xd, nice: false } };
  const y = { type: 'quantitative' as const, scale: { domain: yd, nice: false } };
  const maxMemory = Math.max(1, ...values.map((v) => v.memory));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: `${task}: ${metric} vs time (bubble area = trainable parameters, √ scale)`, subtitle: `${better} and small is better${opts.short ? '; β = bitfit, γ = difffit-gamma' : ''}` },
    data: { values },
    config: { view: { clip: false } },
    vconcat: [
      {
        width, height,
        layer: [
          { transform: [{ filter: 'isValid(datum.lx1)' }], mark: { type: 'rule', color: '#888', strokeWidth: 0.8 }, encoding: { x: { field: 'lx1', ...x }, y: { field: 'ly1', ...y }, x2: { field: 'lx2' }, y2: { field: 'ly2' } } },
          {
            mark: { type: 'circle', opacity: 0.6, stroke: 'black', strokeWidth: 0.5 },
            encoding: {
              x: { field: 'time', ...x, title: 'wall time to best (s)' }, y: { field: 'value', ...y, title: metric },
              size: { field: 'params', type: 'quantitative', title: 'parameters', scale: { type: 'sqrt', domain: [0, maxParams], range: [...AREA], nice: false } }, color,
            },
          },
          // One text layer per alignment: vega-lite has no align channel.
          ...(['left', 'center', 'right'] as const).map((align) => ({
            transform: [{ filter: { field: 'align', equal: align } }],
            mark: { type: 'text' as const, fontSize: FONT, align, baseline: 'middle' as const },
            encoding: { x: { field: 'labelX', ...x }, y: { field: 'labelY', ...y }, text: { field: 'method' } },
          })),
        ],
      },
      {
        width, height: 150,
        encoding: { x: { field: 'method', type: 'nominal', sort: null, title: null, axis: { labelAngle: -35, labelLimit: 0 } } },
        layer: [
          { mark: 'bar', encoding: { y: { field: 'memory', type: 'quantitative', title: 'peak memory (MB)', scale: { domain: [0, maxMemory * 1.18], nice: true } }, color } },
          { mark: { type: 'text', fontSize: 9, dy: -6 }, encoding: { y: { field: 'memory', type: 'quantitative' }, text: { field: 'memory', format: maxMemory >= 100 ? '.0f' : '.1f' } } },
        ],
      },
    ],
  };
}

/** Writes DIR/NAME.svg and DIR/NAME.png, the bubble plot of `rows`. */
export function writeBubblePlot(dir: string, name: string, task: string, rows: readonly MethodResult[]): Promise<string[]> {
  return writeChart(bubbleSpec(task, rows, { short: name === 'grid' }), path.join(dir, `${name}.png`), { both: true });
}

/** Writes DIR/report.md, DIR/NAME.svg, DIR/NAME.png and DIR/results.json; returns the paths. */
export async function writeReport(dir: string, name: string, task: string, rows: readonly MethodResult[], notes = ''): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  const md = path.join(dir, 'report.md');
  const json = path.join(dir, 'results.json');
  fs.writeFileSync(md, `# onelora bench methods\n\n${notes}${markdownTable(task, rows)}\n![${task}](${name}.png)\n`);
  const plots = await writeBubblePlot(dir, name, task, rows);
  fs.writeFileSync(json, JSON.stringify({ task, results: rows }, null, 2) + '\n');
  return [md, ...plots, json];
}

/**
 * Figure 9: one panel per layer type (2 × 2), x = principal component (log, up to the layer's
 * input size), y = |cos|, one line per compression.
 */
export function pcaSpec(r: PcaResult): vegaLite.TopLevelSpec {
  const order = ['qkv', 'attn_out', 'mlp_first', 'mlp_second'];
  const values = Object.entries(r.similarity).flatMap(([layer, byVec]) =>
    Object.entries(byVec).flatMap(([vector, sims]) => sims.map((sim, i) => ({ layer: `${layer} (${sims.length} PCs)`, vector, pc: i + 1, sim }))));
  const panels = order.filter((l) => l in r.similarity).map((l) => `${l} (${r.similarity[l as keyof PcaResult['similarity']].summation.length} PCs)`);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: `${r.task}: alignment of the PCs of a full update (${r.steps} steps) with compression vectors`, subtitle: 'principal components sorted by singular value; 1 = the largest' },
    data: { values },
    columns: 2,
    facet: { field: 'layer', type: 'nominal', title: null, sort: panels, header: { labelFontSize: 12, labelFontWeight: 'bold' } },
    resolve: { scale: { x: 'independent' } },
    spec: {
      width: 340, height: 230,
      mark: { type: 'line', strokeWidth: 1.5, clip: true },
      encoding: {
        x: { field: 'pc', type: 'quantitative', title: 'principal component', scale: { type: 'log', nice: false } },
        y: { field: 'sim', type: 'quantitative', title: 'abs. cos. similarity', scale: { domain: [0, 1] } },
        color: { field: 'vector', type: 'nominal', title: 'compression', sort: ['summation', 'random', 'learned'] },
      },
    },
  };
}

/** Writes DIR/pca.svg, DIR/pca.png and DIR/pca.json. */
export async function writePcaPlot(dir: string, r: PcaResult): Promise<string[]> {
  const plots = await writeChart(pcaSpec(r), path.join(dir, 'pca.png'), { both: true });
  const json = path.join(dir, 'pca.json');
  fs.writeFileSync(json, JSON.stringify(r, null, 2) + '\n');
  return [...plots, json];
}

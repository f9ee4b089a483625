// The report of `onelora bench methods`: a markdown table of the four axes and the paper's bubble
// plot (x = wall time to the best validation metric, y = the metric, bubble area = trainable
// parameters, memory as bars beneath), drawn with vega-lite → vega's SVG renderer → sharp → PNG.
// Nothing is fetched: vega renders in Node without a canvas.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
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

/** The vega-lite spec: bubbles above, memory bars below, one colour per method. */
function bubbleSpec(task: string, rows: readonly MethodResult[]): vegaLite.TopLevelSpec {
  const metric = rows[0]?.metric ?? 'metric';
  const better = rows[0]?.lower_is_better ? 'bottom left' : 'top left';
  const values = rows.map((r) => ({ method: r.method, time: r.time_to_best_s, value: r.value, params: r.trainable, memory: mb(r.peak_bytes) }));
  const color = { field: 'method', type: 'nominal' as const, legend: null };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: `${task}: ${metric} vs time (bubble size = trainable parameters, √ scale)`, subtitle: `${better} and small is better` },
    data: { values },
    vconcat: [
      {
        width: 520, height: 300,
        layer: [
          { mark: { type: 'circle', opacity: 0.55, stroke: 'black', strokeWidth: 0.5 }, encoding: { x: { field: 'time', type: 'quantitative', title: 'wall time to best (s)', scale: { zero: false, padding: 40 } }, y: { field: 'value', type: 'quantitative', title: metric, scale: { zero: false, padding: 40 } }, size: { field: 'params', type: 'quantitative', title: 'parameters', scale: { type: 'sqrt', range: [30, 2500] } }, color } },
          { mark: { type: 'text', dy: -16, fontSize: 10 }, encoding: { x: { field: 'time', type: 'quantitative' }, y: { field: 'value', type: 'quantitative' }, text: { field: 'method' } } },
        ],
      },
      {
        width: 520, height: 140,
        mark: 'bar',
        encoding: { x: { field: 'method', type: 'nominal', sort: null, title: null }, y: { field: 'memory', type: 'quantitative', title: 'peak memory (MB)' }, color },
      },
    ],
  };
}

/** Renders a vega-lite spec to SVG text. */
async function renderSvg(spec: vegaLite.TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Writes DIR/report.md, DIR/NAME.svg, DIR/NAME.png and DIR/results.json; returns the paths. */
export async function writeReport(dir: string, name: string, task: string, rows: readonly MethodResult[], notes = ''): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  const svg = await renderSvg(bubbleSpec(task, rows));
  const files = [path.join(dir, 'report.md'), path.join(dir, `${name}.svg`), path.join(dir, `${name}.png`), path.join(dir, 'results.json')];
  fs.writeFileSync(files[0] as string, `# onelora bench methods\n\n${notes}${markdownTable(task, rows)}\n![${task}](${name}.png)\n`);
  fs.writeFileSync(files[1] as string, svg);
  await sharp(Buffer.from(svg)).png().toFile(files[2] as string);
  fs.writeFileSync(files[3] as string, JSON.stringify({ task, results: rows }, null, 2) + '\n');
  return files;
}

/** Figure 9: one panel per layer type, x = principal component (log), y = |cos|, one line per compression. */
export async function writePcaPlot(dir: string, r: PcaResult): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  const values = Object.entries(r.similarity).flatMap(([layer, byVec]) =>
    Object.entries(byVec).flatMap(([vector, sims]) => sims.map((sim, i) => ({ layer, vector, pc: i + 1, sim }))));
  const spec: vegaLite.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `${r.task}: alignment of the PCs of a full update (${r.steps} steps) with compression vectors`,
    data: { values },
    facet: { column: { field: 'layer', type: 'nominal', title: null, sort: ['qkv', 'attn_out', 'mlp_first', 'mlp_second'] } },
    spec: {
      width: 220, height: 180,
      mark: { type: 'line', point: { size: 8 } },
      encoding: {
        x: { field: 'pc', type: 'quantitative', title: 'principal component', scale: { type: 'log' } },
        y: { field: 'sim', type: 'quantitative', title: 'abs. cos. similarity', scale: { domain: [0, 1] } },
        color: { field: 'vector', type: 'nominal', title: 'compression', sort: ['summation', 'random', 'learned'] },
      },
    },
  };
  const svg = await renderSvg(spec);
  const files = [path.join(dir, 'pca.svg'), path.join(dir, 'pca.png'), path.join(dir, 'pca.json')];
  fs.writeFileSync(files[0] as string, svg);
  await sharp(Buffer.from(svg)).png().toFile(files[1] as string);
  fs.writeFileSync(files[2] as string, JSON.stringify(r, null, 2) + '\n');
  return files;
}

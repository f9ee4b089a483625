// The one way onelora turns a chart into files: vega-lite → vega → SVG (vega renders in Node
// without a canvas, nothing is fetched) → PNG through sharp. Also reads back where vega put each
// text label, so a test can check that no two of them overlap.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';

/** A text item's bounding box in pixels of the whole chart (vega's own text-width estimate). */
export interface TextBox {
  text: string;
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/** What rendering a spec gives: the SVG, its size, the boxes of its data labels (text marks) and of its axes' labels. */
export interface Rendered {
  svg: string;
  width: number;
  height: number;
  labels: TextBox[];
  axisLabels: TextBox[];
}

interface SceneItem {
  x?: number;
  y?: number;
  text?: unknown;
  bounds: { x1: number; y1: number; x2: number; y2: number };
  items?: SceneNode[];
}
interface SceneNode {
  marktype: string;
  role: string;
  items: SceneItem[];
}

/** Boxes of the text items whose role is `role` ('mark': what a spec draws itself), offset through the groups. */
function texts(node: SceneNode, role: string, dx = 0, dy = 0, out: TextBox[] = []): TextBox[] {
  for (const item of node.items) {
    if (node.marktype === 'text' && node.role === role) {
      const b = item.bounds;
      out.push({ text: String(item.text ?? ''), x1: b.x1 + dx, y1: b.y1 + dy, x2: b.x2 + dx, y2: b.y2 + dy });
    }
    if (node.marktype === 'group') for (const child of item.items ?? []) texts(child, role, dx + (item.x ?? 0), dy + (item.y ?? 0), out);
  }
  return out;
}

export async function render(spec: vegaLite.TopLevelSpec): Promise<Rendered> {
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    const root = (view.scenegraph() as unknown as { root: SceneNode }).root;
    // The chart's whole extent (titles, legends, axes and padding included), as the SVG is sized.
    const size = (attr: string): number => Number(new RegExp(`<svg[^>]*\\s${attr}="([\\d.]+)"`).exec(svg)?.[1] ?? NaN);
    return { svg, width: size('width'), height: size('height'), labels: texts(root, 'mark'), axisLabels: texts(root, 'axis-label') };
  } finally {
    view.finalize();
  }
}

/** Writes `spec` as FILE (.svg or .png by its extension); both with `both` (FILE's stem + .svg and .png). */
export async function writeChart(spec: vegaLite.TopLevelSpec, file: string, opts: { both?: boolean } = {}): Promise<string[]> {
  const { svg } = await render(spec);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const stem = file.replace(/\.(svg|png)$/i, '');
  const files = opts.both ? [`${stem}.svg`, `${stem}.png`] : [file];
  for (const f of files) {
    if (f.toLowerCase().endsWith('.svg')) fs.writeFileSync(f, svg);
    // 2× density: sharp rasterises the SVG at 72 dpi, which reads blurry on any current screen.
    else await sharp(Buffer.from(svg), { density: 144 }).png().toFile(f);
  }
  return files;
}

/** True when two boxes share area (touching edges do not count). */
export function overlaps(a: Pick<TextBox, 'x1' | 'y1' | 'x2' | 'y2'>, b: Pick<TextBox, 'x1' | 'y1' | 'x2' | 'y2'>): boolean {
  return a.x1 < b.x2 && b.x1 < a.x2 && a.y1 < b.y2 && b.y1 < a.y2;
}

/** The width vega gives `text` at `fontSize` (its estimate without a canvas), so placed labels match its boxes. */
export function textWidth(text: string, fontSize: number): number {
  // vega exports textMetrics (vega-scenegraph's) at run time; its typings leave it out.
  const metrics = (vega as unknown as { textMetrics: { width(item: object, text: string): number } }).textMetrics;
  return metrics.width({ font: 'sans-serif', fontSize, text }, text);
}

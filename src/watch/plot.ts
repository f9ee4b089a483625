// `onelora plot RUN_DIR… --out curves.png|svg [--metric M]` and the RUN_DIR/curves.png that
// `train` and `launch` draw when a run ends (docs/training.md#plots): the training loss and every evaluation
// metric against the step, one panel each, one line per run (legend by run name), from the runs'
// metrics.jsonl.
import fs from 'node:fs';
import path from 'node:path';
import type * as vegaLite from 'vega-lite';
import { UserError } from '../errors.js';
import { readJsonLines } from '../json-file.js';
import { childLog } from '../log.js';
import { writeChart } from './plot-render.js';

/** Evaluation fields that count what was evaluated rather than measure it: no panel of their own by default. */
const COUNTS = new Set(['tokens', 'samples', 'answered']);
/** Step-line fields that are not curves. */
const NOT_CURVES = new Set(['step', 'wall_s', 'workers', 'straggler']);

interface Point {
  run: string;
  metric: string;
  step: number;
  value: number;
}

/** The runs' names in the legend: their directory names, or their paths where two share one. */
function runNames(dirs: readonly string[]): string[] {
  const base = dirs.map((d) => path.basename(path.resolve(d)));
  return dirs.map((d, i) => (base.filter((b) => b === base[i]).length > 1 ? path.relative(process.cwd(), path.resolve(d)) || '.' : (base[i] as string)));
}

/** Every curve of one run: `loss`, `lr`, `tokens_per_s`, … from its step lines, `eval.NAME` from its evaluations. */
function runPoints(dir: string, run: string): Point[] {
  const file = path.join(dir, 'metrics.jsonl');
  if (!fs.existsSync(file)) throw new UserError(`${dir}: no metrics.jsonl (not a run directory, or a run that has not logged a step yet)`);
  const out: Point[] = [];
  for (const line of readJsonLines(file, { partialLastLine: true }) as Record<string, unknown>[]) {
    const step = line.step;
    if (typeof step !== 'number') continue;
    const ev = line.eval as Record<string, unknown> | undefined;
    const fields = ev && typeof ev === 'object' ? Object.entries(ev).map(([k, v]) => [`eval.${k}`, v] as const) : Object.entries(line).filter(([k]) => !NOT_CURVES.has(k));
    for (const [metric, value] of fields) if (typeof value === 'number' && Number.isFinite(value)) out.push({ run, metric, step, value });
  }
  return out;
}

/** The panels drawn without --metric: the training loss, then each evaluation metric. */
function defaultMetrics(points: readonly Point[]): string[] {
  const evals = [...new Set(points.map((p) => p.metric).filter((m) => m.startsWith('eval.') && !COUNTS.has(m.slice(5))))];
  evals.sort((a, b) => (a === 'eval.loss' ? -1 : b === 'eval.loss' ? 1 : a.localeCompare(b)));
  return [...(points.some((p) => p.metric === 'loss') ? ['loss'] : []), ...evals];
}

const TITLES: Record<string, string> = { loss: 'training loss', lr: 'learning rate', grad_norm: 'gradient norm', tokens_per_s: 'tokens/s', samples_per_s: 'samples/s', peak_bytes: 'peak tensor memory (bytes)' };
const title = (m: string): string => TITLES[m] ?? (m.startsWith('eval.') ? `eval ${m.slice(5)}` : m);

/** The chart of `dirs`' curves: `metric` alone, or the default panels. */
export function curvesSpec(dirs: readonly string[], metric?: string): vegaLite.TopLevelSpec {
  if (dirs.length === 0) throw new UserError('give at least one RUN_DIR');
  const names = runNames(dirs);
  const all = dirs.flatMap((d, i) => runPoints(d, names[i] as string));
  const known = [...new Set(all.map((p) => p.metric))].sort();
  if (metric !== undefined && !known.includes(metric)) {
    throw new UserError(`--metric ${metric}: no run has it; the runs have ${known.join(', ') || 'no metrics yet'}`);
  }
  const metrics = metric !== undefined ? [metric] : defaultMetrics(all);
  if (metrics.length === 0) throw new UserError(`${dirs.join(', ')}: no training loss or evaluation logged yet`);
  const values = all.filter((p) => metrics.includes(p.metric)).map((p) => ({ ...p, panel: title(p.metric), evaluation: p.metric.startsWith('eval.') }));
  const color = { field: 'run', type: 'nominal' as const, title: 'run', sort: names, legend: { orient: 'bottom' as const, direction: 'vertical' as const, labelLimit: 0 } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: names.length === 1 ? `${names[0]}: training curves` : `training curves of ${names.length} runs` },
    data: { values },
    columns: Math.min(2, metrics.length),
    facet: { field: 'panel', type: 'nominal', title: null, sort: metrics.map(title), header: { labelFontSize: 12, labelFontWeight: 'bold' } },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 400, height: 250,
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'step', scale: { nice: false }, axis: { format: 'd', tickMinStep: 1 } },
        y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false } },
        color,
      },
      layer: [
        { mark: { type: 'line', strokeWidth: 1.5 } },
        // Evaluations are few: a point on each, so a single one still shows.
        { transform: [{ filter: 'datum.evaluation' }], mark: { type: 'point', filled: true, size: 30 } },
      ],
    },
  };
}

/** Writes the curves of `dirs` to `out` (.png or .svg); returns the file. */
export async function writeCurves(dirs: readonly string[], out: string, metric?: string): Promise<string> {
  if (!/\.(png|svg)$/i.test(out)) throw new UserError(`--out ${out}: give a .png or .svg file`);
  const [file] = await writeChart(curvesSpec(dirs, metric), out);
  return file as string;
}

/** RUN_DIR/curves.png when a run ends (train, and launch's coordinator): a chart that fails is a warning, never a failed run. */
export async function drawRunCurves(output: string): Promise<void> {
  try {
    await writeCurves([output], path.join(output, 'curves.png'));
  } catch (err) {
    childLog('plot').warn({ err: (err as Error).message }, `${path.join(output, 'curves.png')} not drawn`);
  }
}

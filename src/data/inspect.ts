// `onelora data inspect DIR`: rows per split, the LM length histogram or the label distribution of
// the training split, and its first row decoded (the tokenizer named in the schema metadata).
import path from 'node:path';
import { UserError, messageOf } from '../errors.js';
import { readDepth, readFixed, readLm, type SchemaInfo } from './arrow.js';
import { Dataset, datasetSplits } from './arrow-file.js';
import { readLmMeta } from './lm-meta.js';
import { IGNORE_INDEX } from './metamath.js';
import { loadTokenizer, resolveTokenizerRef } from './tokenizer.js';

export interface InspectReport {
  dir: string;
  kind: SchemaInfo['kind'];
  rows: Record<string, number>;
  /** LM: token counts of the first split, in 8 equal-width buckets. */
  lengths?: { min: number; max: number; mean: number; histogram: { from: number; to: number; count: number }[] };
  /** Images and latents: rows per class name in the first split. */
  labels?: Record<string, number>;
  example: Record<string, unknown>;
}

function lengthStats(ds: Dataset): NonNullable<InspectReport['lengths']> {
  const all: number[] = [];
  for (let b = 0; b < ds.numBatches; b++) all.push(...readLm(ds.batch(b)).lengths);
  if (all.length === 0) return { min: 0, max: 0, mean: 0, histogram: [] };
  const min = Math.min(...all);
  const max = Math.max(...all);
  const width = Math.max(1, Math.ceil((max - min + 1) / 8));
  const histogram = Array.from({ length: Math.ceil((max - min + 1) / width) }, (_, i) => ({ from: min + i * width, to: min + (i + 1) * width - 1, count: 0 }));
  for (const l of all) histogram[Math.floor((l - min) / width)]!.count++;
  return { min, max, mean: all.reduce((a, b) => a + b, 0) / all.length, histogram };
}

function labelCounts(ds: Dataset, name: 'image' | 'latent', classes: string[]): Record<string, number> {
  const counts = new Map<number, number>();
  for (let b = 0; b < ds.numBatches; b++) for (const l of readFixed(ds.batch(b), name).labels) counts.set(l, (counts.get(l) ?? 0) + 1);
  const out: Record<string, number> = {};
  for (const [l, n] of [...counts].sort((a, b) => a[0] - b[0])) out[classes[l] ?? String(l)] = n;
  return out;
}

function lmExample(ds: Dataset): Record<string, unknown> {
  const c = readLm(ds.rows([0]));
  const ids = c.inputIds[0]!;
  const labels = c.labels[0]!;
  const promptTokens = labels.findIndex((l) => l !== IGNORE_INDEX);
  const meta = readLmMeta(ds);
  const example: Record<string, unknown> = {
    tokens: ids.length, prompt_tokens: promptTokens < 0 ? ids.length : promptTokens, tokenizer: ds.info.tokenizer ?? null,
    vocab_size: meta.vocabSize ?? null, template: meta.template ?? null,
  };
  if (ds.info.tokenizer === undefined) return { ...example, text: null, note: `no onelora.tokenizer metadata in ${ds.file}` };
  try {
    const tok = loadTokenizer(resolveTokenizerRef(ds.info.tokenizer, path.dirname(ds.file)));
    return { ...example, text: tok.decode(ids), response: tok.decode(labels.filter((l) => l !== IGNORE_INDEX)) };
  } catch (err) {
    return { ...example, text: null, note: `cannot load tokenizer ${ds.info.tokenizer}: ${messageOf(err)}` };
  }
}

function fixedExample(ds: Dataset, name: 'image' | 'latent'): Record<string, unknown> {
  const c = readFixed(ds.rows([0]), name);
  const label = c.labels[0]!;
  const v = c.values;
  if (name === 'image') {
    const mean = [0, 1, 2].map((ch) => {
      let s = 0;
      for (let i = ch; i < v.length; i += 3) s += v[i]!;
      return Math.round((s / (v.length / 3)) * 10) / 10;
    });
    return { label, class: ds.info.classes?.[label] ?? null, height: ds.info.height, width: ds.info.width, mean_rgb: mean };
  }
  let s = 0;
  let s2 = 0;
  for (const x of v) {
    s += x;
    s2 += x * x;
  }
  const mean = s / v.length;
  return { label, class: ds.info.classes?.[label] ?? null, shape: ds.info.latentShape, mean, std: Math.sqrt(Math.max(0, s2 / v.length - mean * mean)) };
}

/** Depth rows: the frame, the format (evaluation protocol), and the first row's measured share and depth range. */
function depthExample(ds: Dataset): Record<string, unknown> {
  const c = readDepth(ds.rows([0]));
  let n = 0;
  let lo = Infinity;
  let hi = -Infinity;
  c.depth.forEach((d, i) => {
    if (!c.valid[i]) return;
    n++;
    lo = Math.min(lo, d);
    hi = Math.max(hi, d);
  });
  return { height: ds.info.height, width: ds.info.width, format: ds.info.depthFormat, valid: Math.round((n / c.valid.length) * 1000) / 1000, depth_m: n ? [lo, hi] : null };
}

export function inspect(dir: string): InspectReport {
  const splits = datasetSplits(dir);
  if (splits.length === 0) throw new UserError(`${dir}: no train.arrow, validation.arrow or test.arrow`);
  const sets = splits.map((s) => ({ ...s, ds: Dataset.open(s.file) }));
  try {
    const first = sets[0]!.ds;
    const kind = first.info.kind;
    for (const s of sets) if (s.ds.info.kind !== kind) throw new UserError(`${s.file}: ${s.ds.info.kind} rows, but ${first.file} holds ${kind} rows`);
    const rows = Object.fromEntries(sets.map((s) => [s.split, s.ds.numRows]));
    const report: InspectReport = { dir: path.resolve(dir), kind, rows, example: {} };
    const name = kind === 'image' ? 'image' : 'latent';
    if (kind === 'lm') report.lengths = lengthStats(first);
    else if (kind !== 'depth') report.labels = labelCounts(first, name, first.info.classes ?? []);
    if (first.numRows > 0) report.example = kind === 'lm' ? lmExample(first) : kind === 'depth' ? depthExample(first) : fixedExample(first, name);
    return report;
  } finally {
    for (const s of sets) s.ds.close();
  }
}

export function formatInspectReport(r: InspectReport): string {
  const lines = [`${r.dir} (${r.kind})`];
  for (const [split, n] of Object.entries(r.rows)) lines.push(`  ${split.padEnd(10)} ${n} rows`);
  if (r.lengths) {
    lines.push(`  lengths    min ${r.lengths.min}, mean ${r.lengths.mean.toFixed(1)}, max ${r.lengths.max}`);
    const top = Math.max(1, ...r.lengths.histogram.map((h) => h.count));
    for (const h of r.lengths.histogram) lines.push(`    ${`${h.from}-${h.to}`.padStart(11)} ${String(h.count).padStart(7)} ${'#'.repeat(Math.round((40 * h.count) / top))}`);
  }
  if (r.labels) {
    lines.push(`  labels     ${Object.keys(r.labels).length} classes`);
    for (const [c, n] of Object.entries(r.labels).slice(0, 20)) lines.push(`    ${c.padEnd(20)} ${n}`);
    if (Object.keys(r.labels).length > 20) lines.push('    …');
  }
  lines.push('  example');
  for (const [k, v] of Object.entries(r.example)) lines.push(`    ${k}: ${typeof v === 'string' ? v.replace(/\n/g, '\n      ') : JSON.stringify(v)}`);
  return lines.join('\n');
}

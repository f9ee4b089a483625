// `onelora data prepare`: one source → train/validation (or test) Arrow files in DIR. The whole
// output is built in a sibling temp directory and swapped in only when complete, so an existing DIR
// is never half overwritten (it is replaced whole, and only if it holds a prepared dataset).
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { prepareDepth } from './depth-prepare.js';
import { prepareCifar, prepareImagefolder } from './images.js';
import { prepareLatents } from './latents.js';
import { prepareMetamath } from './metamath.js';
import { prepareVaeLatents, type LatentEncoder } from './vae-latents.js';
import { BadRows, DATASETS, DEFAULTS, log, type DatasetName, type PrepareOptions } from './prepare-common.js';

export { DATASETS, DEFAULTS, type DatasetName, type PrepareOptions };

export interface PrepareReport {
  dataset: DatasetName;
  out: string;
  /** Rows written per split. */
  rows: Record<string, number>;
  skipped: number;
  /** LM rows cut to --max-len (0 for other datasets). */
  truncated: number;
  seconds: number;
  rows_per_s: number;
  /** The first few skipped rows, each naming file and row. */
  skipped_examples: string[];
}

function checkOut(out: string): void {
  if (!fs.existsSync(out)) return;
  if (!fs.statSync(out).isDirectory()) throw new UserError(`--out ${out}: exists and is not a directory`);
  const entries = fs.readdirSync(out);
  if (entries.length > 0 && !entries.some((e) => e.endsWith('.arrow'))) {
    throw new UserError(`--out ${out}: exists and does not hold a prepared dataset; refusing to replace it`);
  }
}

/** Moves `tmp` to `out`, replacing an existing `out` whole (rename aside, rename in, delete the old one). */
function swapIn(tmp: string, out: string): void {
  const fd = fs.openSync(tmp, 'r');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  if (fs.existsSync(out)) {
    const old = `${out}.old-${process.pid}`;
    fs.renameSync(out, old);
    fs.renameSync(tmp, out);
    fs.rmSync(old, { recursive: true, force: true });
  } else {
    fs.renameSync(tmp, out);
  }
}

function resolveOptions(partial: Partial<PrepareOptions> & Pick<PrepareOptions, 'dataset' | 'input' | 'out'>): PrepareOptions {
  const o: PrepareOptions = { ...DEFAULTS, ...partial };
  if (!DATASETS.includes(o.dataset)) throw new UserError(`--dataset ${String(o.dataset)}: expected one of ${DATASETS.join(', ')}`);
  if (!fs.existsSync(o.input)) throw new UserError(`--input ${o.input}: no such file or directory`);
  if (!Number.isInteger(o.seed)) throw new UserError(`--seed must be an integer, got ${o.seed}`);
  if (!(o.valFraction >= 0 && o.valFraction < 1)) throw new UserError(`--val-fraction must be in [0, 1), got ${o.valFraction}`);
  if (!(Number.isInteger(o.maxLen) && o.maxLen >= 2)) throw new UserError(`--max-len must be an integer ≥ 2, got ${o.maxLen}`);
  if (!(Number.isFinite(o.latentScale) && o.latentScale > 0)) throw new UserError(`--latent-scale must be a positive number, got ${o.latentScale}`);
  return o;
}

/** imagefolder/food101 with a VAE: latent rows instead of image rows (src/data/vae-latents.ts). */
export interface VaePrepare {
  readonly encoder: LatentEncoder;
  readonly flip: boolean;
}

export async function prepare(partial: Partial<PrepareOptions> & Pick<PrepareOptions, 'dataset' | 'input' | 'out'>, vae?: VaePrepare): Promise<PrepareReport> {
  const opts = resolveOptions(partial);
  if (vae && opts.dataset !== 'imagefolder' && opts.dataset !== 'food101') throw new UserError(`--vae: only for --dataset imagefolder or food101 (images to latents), not ${opts.dataset}`);
  if (opts.dataset === 'food101' && !fs.existsSync(path.join(opts.input, 'meta', 'train.txt'))) {
    throw new UserError(`--input ${opts.input}: not Food-101's layout (images/<class>/<id>.jpg, meta/classes.txt, meta/train.txt, meta/test.txt)`);
  }
  const out = path.resolve(opts.out);
  checkOut(out);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = fs.mkdtempSync(`${out}.tmp-`);
  const bad = new BadRows(opts.skipBad);
  const t0 = performance.now();
  let rows: Record<string, number>;
  let truncated = 0;
  try {
    switch (opts.dataset) {
      case 'metamath': {
        const r = await prepareMetamath(opts, tmp, bad);
        rows = r.rows;
        truncated = r.truncated;
        break;
      }
      case 'cifar10':
      case 'cifar100':
        rows = await prepareCifar(opts, tmp, bad);
        break;
      case 'imagefolder':
      case 'food101':
        rows = vae ? await prepareVaeLatents(opts, tmp, vae.encoder, vae.flip) : await prepareImagefolder(opts, tmp, bad);
        break;
      case 'latents':
        rows = await prepareLatents(opts, tmp, bad);
        break;
      case 'depth':
        rows = await prepareDepth(opts, tmp, bad);
        break;
    }
    swapIn(tmp, out);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  const seconds = (performance.now() - t0) / 1000;
  const total = Object.values(rows).reduce((a, b) => a + b, 0);
  if (bad.skipped > 0) log.warn({ skipped: bad.skipped }, 'bad input rows skipped (--skip-bad)');
  return {
    dataset: opts.dataset, out, rows, skipped: bad.skipped, truncated, seconds,
    rows_per_s: seconds > 0 ? total / seconds : 0, skipped_examples: bad.examples,
  };
}

/** The human-readable report `data prepare` prints on stdout. */
export function formatPrepareReport(r: PrepareReport): string {
  const lines = [`prepared ${r.dataset} → ${r.out}`];
  for (const [split, n] of Object.entries(r.rows)) lines.push(`  ${split.padEnd(10)} ${n} rows`);
  lines.push(`  skipped    ${r.skipped}${r.skipped ? ' (bad input, --skip-bad)' : ''}`);
  if (r.dataset === 'metamath') lines.push(`  truncated  ${r.truncated} (longer than --max-len)`);
  for (const e of r.skipped_examples) lines.push(`    ${e}`);
  lines.push(`  ${r.seconds.toFixed(2)} s, ${Math.round(r.rows_per_s)} rows/s`);
  return lines.join('\n');
}

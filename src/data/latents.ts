// DiT latents → latent rows (float32, C×H×W flattened row-major) + Int32 labels.
// Input: one .safetensors file or a directory of them (read in name order), each holding
// `latents` [N, C, H, W] (F32/F16/BF16) and `labels` [N] (I32/I64), the layout fast-DiT's
// extract_features.py produces once its .npy files are stacked. Latents are stored multiplied by
// --latent-scale (default 1: fast-DiT already multiplies by the VAE factor 0.18215). Class names
// come from the `classes` metadata entry (a JSON list) when present, else "0".."K-1" for
// K = the `num_classes` metadata entry or the largest label + 1.
import fs from 'node:fs';
import path from 'node:path';
import { openSafetensors, type SafetensorsSource } from '../checkpoint/safetensors.js';
import { UserError } from '../errors.js';
import { latentSchema } from './arrow.js';
import { BadRows, FixedSplitWriter, validationMask, type PrepareOptions } from './prepare-common.js';

function inputFiles(input: string): string[] {
  if (!fs.existsSync(input)) throw new UserError(`${input}: no such file or directory`);
  if (!fs.statSync(input).isDirectory()) return [input];
  const files = fs.readdirSync(input).filter((f) => f.endsWith('.safetensors')).sort().map((f) => path.join(input, f));
  if (files.length === 0) throw new UserError(`${input}: no .safetensors files`);
  return files;
}

interface Part {
  file: string;
  src: SafetensorsSource;
  rows: number;
  shape: number[];
}

function describe(file: string): Part {
  const src = openSafetensors(file);
  const lat = src.tensors.get('latents');
  const lab = src.tensors.get('labels');
  if (!lat) throw new UserError(`${file}: no tensor 'latents' (expected latents [N, C, H, W] and labels [N])`);
  if (!lab) throw new UserError(`${file}: no tensor 'labels' (expected latents [N, C, H, W] and labels [N])`);
  if (lat.shape.length < 2) throw new UserError(`${file}: tensor 'latents' has shape [${lat.shape.join(', ')}], expected [N, C, H, W]`);
  if (lab.shape.length !== 1 || lab.shape[0] !== lat.shape[0]) {
    throw new UserError(`${file}: tensor 'labels' has shape [${lab.shape.join(', ')}], expected [${lat.shape[0]}]`);
  }
  return { file, src, rows: lat.shape[0]!, shape: lat.shape.slice(1) };
}

function classNames(parts: Part[], maxLabel: number): string[] {
  for (const p of parts) {
    const raw = p.src.metadata.classes;
    if (raw !== undefined) {
      const v: unknown = JSON.parse(raw);
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new UserError(`${p.file}: metadata 'classes' is not a JSON list of strings`);
      return v;
    }
  }
  const declared = parts.map((p) => Number(p.src.metadata.num_classes)).find((n) => Number.isInteger(n) && n > 0);
  return Array.from({ length: declared ?? maxLabel + 1 }, (_, i) => String(i));
}

export async function prepareLatents(opts: PrepareOptions, dir: string, bad: BadRows): Promise<Record<string, number>> {
  const parts: Part[] = [];
  try {
    for (const f of inputFiles(opts.input)) parts.push(describe(f));
    const shape = parts[0]!.shape;
    for (const p of parts) {
      if (p.shape.join() !== shape.join()) throw new UserError(`${p.file}: latents [${p.shape.join(', ')}] per row, but ${parts[0]!.file} has [${shape.join(', ')}]`);
    }
    const labelsOf = parts.map((p) => p.src.read('labels').data as Int32Array);
    const maxLabel = labelsOf.reduce((m, l) => l.reduce((a, b) => Math.max(a, b), m), -1);
    const classes = classNames(parts, maxLabel);
    const total = parts.reduce((a, p) => a + p.rows, 0);
    const isVal = validationMask(total, opts.valFraction, opts.seed);
    const schema = latentSchema(shape, classes);
    const size = shape.reduce((a, b) => a * b, 1);
    const writers = ['train', 'validation'].map((s) => new FixedSplitWriter(path.join(dir, `${s}.arrow`), schema, size, (n) => new Float32Array(n)));
    const row = new Float32Array(size);
    let g = 0;
    try {
      parts.forEach((p, pi) => {
        const lat = p.src.read('latents').data as Float32Array;
        for (let r = 0; r < p.rows; r++, g++) {
          const label = labelsOf[pi]![r]!;
          if (label < 0 || label >= classes.length) {
            bad.bad(p.file, `row ${r}`, `label ${label} outside the ${classes.length} classes`);
            continue;
          }
          let finite = true;
          for (let k = 0; k < size; k++) {
            const v = lat[r * size + k]! * opts.latentScale;
            if (!Number.isFinite(v)) finite = false;
            row[k] = v;
          }
          if (!finite) bad.bad(p.file, `row ${r}`, 'latent has NaN or Inf values');
          else writers[isVal[g]!]!.add(row, label);
        }
      });
      for (const w of writers) await w.close();
    } catch (err) {
      for (const w of writers) w.abort();
      throw err;
    }
    return { train: writers[0]!.rows, validation: writers[1]!.rows };
  } finally {
    for (const p of parts) p.src.close();
  }
}

// Sharded safetensors directories as transformers' save_pretrained writes them
// (docs/architecture.md#model-directories): tensors are split in the given order as huggingface_hub's
// split_state_dict_into_shards does (a tensor larger than the limit gets a shard of its own; the
// current shard closes when the next tensor would take it over the limit), written as
// `<base>-0000N-of-0000M.safetensors` with `<base>.safetensors.index.json`
// (`{"metadata": {"total_size"}, "weight_map": {name: shard}}`, sorted keys, 2-space indent); one
// shard is a plain `<base>.safetensors` with no index.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { DTYPE_BYTES } from './dtypes.js';
import { fsyncDir, writeSafetensors, type TensorToWrite } from './safetensors-write.js';

/** transformers' default max_shard_size. */
export const DEFAULT_MAX_SHARD_SIZE = '5GB';

const UNITS: Readonly<Record<string, number>> = {
  B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40,
};

/** A size as transformers' max_shard_size reads it: bytes, or a number with a unit (`5GB` = 5·10⁹, `2GiB` = 2·2³⁰, `200MB`). */
export function parseShardSize(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? (m[2] === '' ? 1 : UNITS[m[2]!.toUpperCase()]) : undefined;
  const bytes = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!(bytes > 0)) throw new UserError(`${flag}: '${text}' is not a size (bytes, or a number with KB, MB, GB, KiB, MiB or GiB: '5GB', '200MB')`);
  return bytes;
}

const shardName = (base: string, i: number, n: number): string => `${base}-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;

function byteSize(t: TensorToWrite): number {
  return t.data.length * DTYPE_BYTES[t.dtype];
}

/** huggingface_hub's split: groups of tensor names, in order. */
function split(entries: readonly [string, TensorToWrite][], maxBytes: number): string[][] {
  const shards: string[][] = [];
  let current: string[] = [];
  let size = 0;
  for (const [name, t] of entries) {
    const bytes = byteSize(t);
    if (bytes > maxBytes) {
      shards.push([name]);
      continue;
    }
    if (size + bytes > maxBytes && current.length > 0) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(name);
    size += bytes;
  }
  if (current.length > 0) shards.push(current);
  return shards;
}

/** Files of an earlier save under `base` that this one does not write (transformers removes them too). */
function staleFiles(dir: string, base: string, keep: ReadonlySet<string>): string[] {
  const pattern = new RegExp(`^${base}(-\\d{5}-of-\\d{5})?\\.safetensors(\\.index\\.json)?$`);
  return fs.readdirSync(dir).filter((f) => pattern.test(f) && !keep.has(f));
}

/**
 * Writes `entries` (in this order) into `dir` as `<base>.safetensors` or shards of at most
 * `maxShardBytes` plus the index; returns the file names written.
 */
export function writeSafetensorsShards(
  dir: string, base: string, entries: readonly [string, TensorToWrite][], maxShardBytes: number, metadata?: Readonly<Record<string, string>>,
): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const byName = new Map(entries);
  const groups = split(entries, maxShardBytes);
  const files = groups.length === 1 ? [`${base}.safetensors`] : groups.map((_, i) => shardName(base, i, groups.length));
  const written = new Set(files);
  const indexName = `${base}.safetensors.index.json`;
  if (groups.length > 1) written.add(indexName);
  for (const f of staleFiles(dir, base, written)) fs.rmSync(path.join(dir, f), { force: true });
  groups.forEach((names, i) => writeSafetensors(path.join(dir, files[i]!), Object.fromEntries(names.map((n) => [n, byName.get(n)!])), metadata));
  if (groups.length > 1) {
    const weightMap: Record<string, string> = {};
    groups.forEach((names, i) => names.forEach((n) => (weightMap[n] = files[i]!)));
    const sorted = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]!]));
    const totalSize = entries.reduce((s, [, t]) => s + byteSize(t), 0);
    const file = path.join(dir, indexName);
    fs.writeFileSync(`${file}.tmp-${process.pid}`, `${JSON.stringify({ metadata: { total_size: totalSize }, weight_map: sorted }, null, 2)}\n`);
    fs.renameSync(`${file}.tmp-${process.pid}`, file);
    fsyncDir(dir);
    files.push(indexName);
  }
  return files;
}

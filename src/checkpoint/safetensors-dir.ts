// Hugging Face model directories (docs/architecture.md#model-directories): `model.safetensors`, or shards listed by
// `model.safetensors.index.json` (`weight_map`: tensor name → shard file). Every shard is opened
// (header only) and checked against the index up front, so a missing shard or a tensor absent from
// its shard is reported before any weight is loaded; afterwards the shards read as one source.
// Where there is no safetensors, the torch.save twin is read the same way (`pytorch_model.bin` +
// `pytorch_model.bin.index.json`, `adapter_model.bin`; docs/models.md#pytorch-bin-and-pt-files),
// safetensors first as transformers prefers it.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { childLog } from '../log.js';
import { openTorchFile } from './torch-file.js';
import { openSafetensors, type LoadedTensor, type SafetensorsSource, type TensorInfo } from './safetensors-read.js';
import { readJsonFile } from '../json-file.js';

const log = childLog('safetensors');

function readIndex(indexFile: string): Map<string, string> {
  const parsed = readJsonFile(indexFile, { label: `${indexFile} (the shard index)` });
  const map = (parsed as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new UserError(`${indexFile}: 'weight_map' is missing or not an object of tensor name → shard file`);
  }
  const out = new Map<string, string>();
  for (const [name, shard] of Object.entries(map)) {
    if (typeof shard !== 'string' || shard === '' || path.basename(shard) !== shard) {
      throw new UserError(`${indexFile}: tensor '${name}': shard ${JSON.stringify(shard)} is not a file name in this directory`);
    }
    out.set(name, shard);
  }
  return out;
}

/** One weights file: torch.save's by name (.bin/.pt/.pth) or first bytes (a zip, a pickle), else safetensors. */
function openWeightFile(file: string): SafetensorsSource {
  let head = Buffer.alloc(0);
  try {
    const fd = fs.openSync(file, 'r');
    try {
      head = Buffer.alloc(2);
      head = head.subarray(0, fs.readSync(fd, head, 0, 2, 0));
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // openSafetensors reports the file that cannot be opened.
  }
  // The name decides; only a file named neither way is sniffed ('PK' zip, or a pickle's PROTO).
  // A safetensors file begins with its header length, whose low byte can be anything (0x80 too).
  const torch = /\.(bin|pth?)$/.test(file) || (!file.endsWith('.safetensors') && ((head[0] === 0x50 && head[1] === 0x4b) || head[0] === 0x80));
  return torch ? openTorchFile(file) : openSafetensors(file);
}

/** The torch.save name Hugging Face uses where `base` is a safetensors name. */
function torchTwin(base: string): string {
  return base === 'model.safetensors' ? 'pytorch_model.bin' : base.replace(/\.safetensors$/, '.bin');
}

/**
 * Opens `DIR/<base>` or, when absent, the shards listed by `DIR/<base>.index.json`, and failing both
 * the torch.save twin (`pytorch_model.bin` for `model.safetensors`, else `.bin` for `.safetensors`)
 * the same two ways. `base` defaults to `model.safetensors`; a path to a file is opened as that file.
 */
export function openSafetensorsDir(dir: string, base = 'model.safetensors'): SafetensorsSource {
  if (fs.existsSync(dir) && fs.statSync(dir).isFile()) return openWeightFile(dir);
  const names = [base, torchTwin(base)].filter((n, i, all) => all.indexOf(n) === i);
  for (const name of names) {
    if (fs.existsSync(path.join(dir, name))) return openWeightFile(path.join(dir, name));
    if (fs.existsSync(path.join(dir, `${name}.index.json`))) return openIndexed(dir, name);
  }
  throw new UserError(`${dir}: no weights: none of ${names.flatMap((n) => [n, `${n}.index.json`]).join(', ')} is there`);
}

/** The shards of `DIR/<base>.index.json` as one source. */
function openIndexed(dir: string, base: string): SafetensorsSource {
  const indexFile = path.join(dir, `${base}.index.json`);
  const weightMap = readIndex(indexFile);
  const shards = new Map<string, SafetensorsSource>();
  try {
    for (const [name, shard] of weightMap) {
      if (shards.has(shard)) continue;
      const file = path.join(dir, shard);
      if (!fs.existsSync(file)) {
        throw new UserError(`${indexFile}: tensor '${name}': shard '${shard}' does not exist in ${dir}`);
      }
      shards.set(shard, openWeightFile(file));
    }
    const tensors = new Map<string, TensorInfo>();
    const owner = new Map<string, SafetensorsSource>();
    for (const [name, shard] of weightMap) {
      const src = shards.get(shard)!;
      const info = src.tensors.get(name);
      if (!info) throw new UserError(`${indexFile}: tensor '${name}': mapped to shard '${shard}', which has no such tensor`);
      tensors.set(name, info);
      owner.set(name, src);
    }
    for (const [shard, src] of shards) {
      const extra = [...src.tensors.keys()].filter((n) => !tensors.has(n));
      // transformers loads by the index too; a tensor it does not list is never looked up.
      if (extra.length > 0) log.warn({ shard, count: extra.length, first: extra[0] }, 'shard holds tensors the index does not list; ignored');
    }
    return {
      file: dir,
      metadata: Object.freeze({ ...[...shards.values()][0]?.metadata }),
      tensors,
      read(name: string): LoadedTensor {
        const src = owner.get(name);
        if (!src) throw new UserError(`${dir}: tensor '${name}': not in ${base}.index.json`);
        return src.read(name);
      },
      close(): void {
        for (const s of shards.values()) s.close();
      },
    };
  } catch (err) {
    for (const s of shards.values()) s.close();
    throw err;
  }
}

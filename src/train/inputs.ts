// The run's inputs by content (docs/training.md#resuming): the size and sha256 of every file of
// the model directory and of each data split, computed once when a run starts and recorded in its
// `inputs.json`, then computed again and compared when it resumes. A checkpoint continues the run
// it was written by only on the same files: a model or data file changed in between is exit 2
// naming it, not a silently different run. (sha256, Node's own crypto, streamed in 8 MiB reads:
// about 0.4 GB/s on the loaded 2-core test machine, so a 13 GB model adds half a minute.)
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../checkpoint/checkpoint.js';
import type { RunConfig } from '../config/index.js';
import { UserError } from '../errors.js';
import { readJsonObject } from '../json-file.js';
import { childLog } from '../log.js';

const INPUTS_FILE = 'inputs.json';

interface InputFile {
  /** The config key the file belongs to (model.path, data.train…). */
  key: string;
  size: number;
  sha256: string;
}

interface InputsRecord {
  hash: 'sha256';
  files: Record<string, InputFile>;
}

function sha256Stream(file: string): string {
  const h = createHash('sha256');
  const buf = Buffer.alloc(8 << 20);
  const fd = fs.openSync(file, 'r');
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? filesUnder(p) : e.isFile() ? [p] : [];
  });
}

/** The input files this machine can see, by absolute path: the model directory's (a preset has none) and the data splits'. */
function inputFiles(cfg: RunConfig): Map<string, string> {
  const out = new Map<string, string>();
  const model = cfg.model.path;
  if (model && fs.existsSync(model) && fs.statSync(model).isDirectory()) for (const f of filesUnder(model)) out.set(path.resolve(f), 'model.path');
  for (const split of ['train', 'validation', 'test'] as const) {
    const file = cfg.data[split];
    if (file && fs.existsSync(file)) out.set(path.resolve(file), `data.${split}`);
  }
  return out;
}

function hashInputs(cfg: RunConfig): InputsRecord {
  const t0 = performance.now();
  const files: Record<string, InputFile> = {};
  let bytes = 0;
  for (const [file, key] of [...inputFiles(cfg)].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const size = fs.statSync(file).size;
    bytes += size;
    files[file] = { key, size, sha256: sha256Stream(file) };
  }
  const s = (performance.now() - t0) / 1000;
  childLog('train').debug({ files: Object.keys(files).length, bytes, seconds: Number(s.toFixed(2)) }, 'hashed the run\'s input files');
  return { hash: 'sha256', files };
}

/** A fresh run: records its inputs' sizes and hashes in OUTPUT/inputs.json. */
export function recordInputs(output: string, cfg: RunConfig): void {
  writeFileAtomic(path.join(output, INPUTS_FILE), JSON.stringify(hashInputs(cfg), null, 2) + '\n');
}

/**
 * A resume: the inputs must be the files the run started on (exit 2 naming the first that changed,
 * appeared or went missing). A run recorded before inputs.json existed gets one now.
 */
export function verifyInputs(output: string, cfg: RunConfig): void {
  const file = path.join(output, INPUTS_FILE);
  if (!fs.existsSync(file)) {
    childLog('train').warn({ output }, `${file} is missing (a run from an older onelora): recording the inputs as they are now`);
    return recordInputs(output, cfg);
  }
  const was = (readJsonObject(file) as unknown as InputsRecord).files ?? {};
  const now = hashInputs(cfg).files;
  const fix = 'resume with the files the run started on, or start a new run with --output NEW_DIR';
  for (const [f, w] of Object.entries(was)) {
    const n = now[f];
    if (!n) throw new UserError(`${f} (${w.key}) is gone since the run started (recorded in ${file}): ${fix}`);
    if (n.size !== w.size || n.sha256 !== w.sha256) {
      throw new UserError(`${f} (${w.key}) changed since the run started: ${n.size} bytes, sha256 ${n.sha256.slice(0, 12)}… now; ${w.size} bytes, ${w.sha256.slice(0, 12)}… in ${file}: ${fix}`);
    }
  }
  const added = Object.keys(now).find((f) => !was[f]);
  if (added) throw new UserError(`${added} (${now[added]!.key}) is new since the run started (not in ${file}): ${fix}`);
}

/**
 * A worker, before it loads the model: where it sees the run's inputs.json (launch, or a shared
 * volume), each recorded model file it reads must have its recorded size (exit 2 naming the file).
 * Sizes only: the coordinator hashed the files once; every worker hashing a 13 GB model again would
 * cost each process half a minute.
 */
export function checkModelSizes(output: string, cfg: RunConfig): void {
  const file = path.join(output, INPUTS_FILE);
  if (!cfg.model.path || !fs.existsSync(file)) return;
  for (const [f, w] of Object.entries((readJsonObject(file) as unknown as InputsRecord).files ?? {})) {
    if (w.key !== 'model.path') continue;
    const size = fs.existsSync(f) ? fs.statSync(f).size : null;
    if (size !== w.size) throw new UserError(`${f} (model.path) is ${size === null ? 'missing' : `${size} bytes`} on this worker, ${w.size} bytes when the run started (${file}): every worker must read the same model`);
  }
}

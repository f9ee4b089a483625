// Run checkpoints (docs/architecture.md#checkpoints): `checkpoints/step-N/` holds the adapter (PEFT format, for people
// and `onelora merge`), `trainable.safetensors` (the exact trainable tensors, for resume),
// `optimizer.safetensors` (AdamW moments) and `trainer_state.json` (step, epoch, samples_seen,
// rng, config_hash, world_size, checksums). A checkpoint is written into a temporary directory,
// every file fsynced, the directory renamed into place and the parent fsynced; `latest` is then
// replaced atomically. A crash at any point leaves the previous checkpoint intact and pointed to.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DiskWriteError, isErrno, UserError, writingTo } from '../errors.js';
import { openSafetensors, writeSafetensors, type TensorToWrite } from './safetensors.js';
import { fsyncDir } from './safetensors-write.js';
import { readJsonObject } from '../json-file.js';

export interface TrainerState {
  step: number;
  epoch: number;
  samples_seen: number;
  /** Every random choice is counter-based on (seed, epoch, sample id): the seed is the whole RNG state. */
  rng: { seed: number };
  config_hash: string;
  world_size: number;
  /** sha256 of every other file in the checkpoint directory, by relative path. */
  checksums: Record<string, string>;
  /** Best validation metric so far, carried over a resume. */
  best?: { step: number; metric: string; value: number } | null;
  optimizer_t: number;
}

export interface CheckpointPayload {
  state: Omit<TrainerState, 'checksums'>;
  trainable: Record<string, TensorToWrite>;
  optimizer: { m: Record<string, TensorToWrite>; v: Record<string, TensorToWrite> };
  /** Writes the user-facing adapter directory (PEFT format) into the given path. */
  writeAdapter(dir: string): void;
}

export function checkpointsDir(output: string): string {
  return path.join(output, 'checkpoints');
}

function sha256File(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const rel = path.join(prefix, e.name);
    if (e.isDirectory()) out.push(...listFiles(path.join(dir, e.name), rel));
    else out.push(rel);
  }
  return out;
}

function fsyncFile(file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes a text file atomically (temp, fsync, rename, fsync parent). */
export function writeFileAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writingTo(file, () => {
    fs.writeFileSync(tmp, text);
    fsyncFile(tmp);
    fs.renameSync(tmp, file);
    fsyncDir(path.dirname(file));
  });
}

/**
 * Every file of a checkpoint, trainer_state.json included, by sha256 in `sha256sum` format (so
 * `sha256sum -c checksums.sha256` checks one by hand). trainer_state.json's own `checksums` map
 * cannot cover itself; this file does.
 */
const CHECKSUMS_FILE = 'checksums.sha256';

/**
 * Writes `checkpoints/step-N/` atomically, points `latest` at it and keeps the newest `keep`. A
 * write the disk refuses (ENOSPC, EROFS, EIO…) removes the temporary directory and throws a
 * DiskWriteError naming the file: `latest` still points at the last complete checkpoint.
 */
export function writeCheckpoint(output: string, payload: CheckpointPayload, keep: number): string {
  const root = checkpointsDir(output);
  const name = `step-${payload.state.step}`;
  const tmp = path.join(root, `.tmp-${name}-${process.pid}`);
  const at = { file: root };
  try {
    return writeInto(root, tmp, name, payload, keep, at);
  } catch (err) {
    if (!isErrno(err)) throw err;
    try {
      fs.rmSync(tmp, { recursive: true, force: true });
    } catch {
      // Best effort: the next start removes stale temporary directories (removeStaleTemps).
    }
    throw new DiskWriteError(at.file, err);
  }
}

function writeInto(root: string, tmp: string, name: string, payload: CheckpointPayload, keep: number, at: { file: string }): string {
  fs.mkdirSync(root, { recursive: true });
  const final = path.join(root, name);
  at.file = tmp;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  writeSafetensors((at.file = path.join(tmp, 'trainable.safetensors')), payload.trainable);
  const opt: Record<string, TensorToWrite> = {};
  for (const [k, t] of Object.entries(payload.optimizer.m)) opt[`exp_avg.${k}`] = t;
  for (const [k, t] of Object.entries(payload.optimizer.v)) opt[`exp_avg_sq.${k}`] = t;
  writeSafetensors((at.file = path.join(tmp, 'optimizer.safetensors')), opt, { step: String(payload.state.optimizer_t) });
  payload.writeAdapter((at.file = path.join(tmp, 'adapter')));
  const checksums: Record<string, string> = {};
  for (const rel of listFiles(tmp)) {
    fsyncFile((at.file = path.join(tmp, rel)));
    checksums[rel] = sha256File(path.join(tmp, rel));
  }
  const state: TrainerState = { ...payload.state, checksums };
  fs.writeFileSync((at.file = path.join(tmp, 'trainer_state.json')), JSON.stringify(state, null, 2) + '\n');
  fsyncFile(at.file);
  const all = { ...checksums, 'trainer_state.json': sha256File(at.file) };
  fs.writeFileSync((at.file = path.join(tmp, CHECKSUMS_FILE)), Object.entries(all).map(([rel, sum]) => `${sum}  ${rel}\n`).join(''));
  fsyncFile(at.file);
  at.file = tmp;
  if (fs.existsSync(path.join(tmp, 'adapter'))) fsyncDir(path.join(tmp, 'adapter'));
  fsyncDir(tmp);
  // Re-writing the same step (a resume that repeats the final step) replaces the old directory.
  at.file = final;
  if (fs.existsSync(final)) fs.rmSync(final, { recursive: true, force: true });
  fs.renameSync(tmp, final);
  fsyncDir(root);
  writeFileAtomic((at.file = path.join(root, 'latest')), name + '\n');
  at.file = root;
  pruneCheckpoints(root, keep, name);
  return final;
}

/**
 * Removes the temporary directories (`checkpoints/.tmp-*`) of checkpoint writes that a killed
 * process or a full disk left behind; run at the start of every run and resume.
 */
export function removeStaleTemps(output: string): void {
  const root = checkpointsDir(output);
  if (!fs.existsSync(root)) return;
  for (const n of fs.readdirSync(root)) if (n.startsWith('.tmp-')) fs.rmSync(path.join(root, n), { recursive: true, force: true });
}

function pruneCheckpoints(root: string, keep: number, current: string): void {
  const steps = fs
    .readdirSync(root)
    .filter((n) => /^step-\d+$/.test(n))
    .sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
  const drop = steps.slice(0, Math.max(0, steps.length - Math.max(1, keep)));
  for (const n of drop) if (n !== current) fs.rmSync(path.join(root, n), { recursive: true, force: true });
}

export interface LoadedCheckpoint {
  dir: string;
  state: TrainerState;
  trainable: Map<string, Float32Array>;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

/** The directory `checkpoints/latest` points to, or null when the run has none. */
export function latestCheckpoint(output: string): string | null {
  const latest = path.join(checkpointsDir(output), 'latest');
  if (!fs.existsSync(latest)) return null;
  const name = fs.readFileSync(latest, 'utf8').trim();
  if (!/^step-\d+$/.test(name)) throw new UserError(`${latest}: expected 'step-N', found '${name}'`);
  const dir = path.join(checkpointsDir(output), name);
  if (!fs.existsSync(dir)) throw new UserError(`${latest} points to ${name}, which does not exist`);
  return dir;
}

function parseChecksums(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [i, line] of fs.readFileSync(file, 'utf8').split('\n').entries()) {
    if (line === '') continue;
    const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
    if (!m) throw new UserError(`${file}:${i + 1}: not a sha256sum line (the checkpoint is corrupt)`);
    out[m[2]!] = m[1]!;
  }
  if (!out['trainer_state.json']) throw new UserError(`${file}: does not cover trainer_state.json (the checkpoint is corrupt)`);
  return out;
}

function verifyChecksums(dir: string, sums: Record<string, string>): void {
  for (const [rel, sum] of Object.entries(sums)) {
    const file = path.join(dir, rel);
    if (!fs.existsSync(file)) throw new UserError(`${dir}: checkpoint file '${rel}' is missing`);
    if (sha256File(file) !== sum) throw new UserError(`${file}: checksum mismatch (the file changed since the checkpoint was written, or is corrupt)`);
  }
}

/** Reads and verifies a checkpoint: every checksum, and the config hash when one is expected. */
export function readCheckpoint(dir: string, expectConfigHash?: string): LoadedCheckpoint {
  const stateFile = path.join(dir, 'trainer_state.json');
  if (!fs.existsSync(stateFile)) throw new UserError(`${dir}: no trainer_state.json (not a checkpoint directory?)`);
  const sums = path.join(dir, CHECKSUMS_FILE);
  // Checkpoints written before checksums.sha256 existed are checked by trainer_state.json's map alone.
  if (fs.existsSync(sums)) verifyChecksums(dir, parseChecksums(sums));
  const state = readJsonObject(stateFile) as unknown as TrainerState;
  verifyChecksums(dir, state.checksums ?? {});
  if (expectConfigHash !== undefined && state.config_hash !== expectConfigHash) {
    throw new UserError(
      `${dir}: checkpoint was written for config hash ${state.config_hash.slice(0, 12)}…, this run's config hashes to ${expectConfigHash.slice(0, 12)}… (a different model, method, data or optimizer setting)`,
    );
  }
  const read = (file: string, prefix = ''): Map<string, Float32Array> => {
    const src = openSafetensors(path.join(dir, file));
    try {
      const out = new Map<string, Float32Array>();
      for (const name of src.tensors.keys()) if (name.startsWith(prefix)) out.set(name.slice(prefix.length), src.read(name).data as Float32Array);
      return out;
    } finally {
      src.close();
    }
  };
  return { dir, state, trainable: read('trainable.safetensors'), m: read('optimizer.safetensors', 'exp_avg.'), v: read('optimizer.safetensors', 'exp_avg_sq.') };
}

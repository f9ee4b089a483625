// Run checkpoints (docs/architecture.md#checkpoints): `checkpoints/step-N/` holds the adapter (PEFT format, for people
// and `onelora merge`), `trainable.safetensors` (the exact trainable tensors, for resume),
// `optimizer.safetensors` (AdamW moments) and `trainer_state.json` (step, epoch, samples_seen,
// rng, config_hash, world_size, checksums). A checkpoint is written into a temporary directory,
// every file fsynced, the directory renamed into place and the parent fsynced; `latest` is then
// replaced atomically. A crash at any point leaves the previous checkpoint intact and pointed to.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
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
  fs.writeFileSync(tmp, text);
  fsyncFile(tmp);
  fs.renameSync(tmp, file);
  fsyncDir(path.dirname(file));
}

/** Writes `checkpoints/step-N/` atomically, points `latest` at it and keeps the newest `keep`. */
export function writeCheckpoint(output: string, payload: CheckpointPayload, keep: number): string {
  const root = checkpointsDir(output);
  fs.mkdirSync(root, { recursive: true });
  const name = `step-${payload.state.step}`;
  const final = path.join(root, name);
  const tmp = path.join(root, `.tmp-${name}-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  writeSafetensors(path.join(tmp, 'trainable.safetensors'), payload.trainable);
  const opt: Record<string, TensorToWrite> = {};
  for (const [k, t] of Object.entries(payload.optimizer.m)) opt[`exp_avg.${k}`] = t;
  for (const [k, t] of Object.entries(payload.optimizer.v)) opt[`exp_avg_sq.${k}`] = t;
  writeSafetensors(path.join(tmp, 'optimizer.safetensors'), opt, { step: String(payload.state.optimizer_t) });
  payload.writeAdapter(path.join(tmp, 'adapter'));
  const checksums: Record<string, string> = {};
  for (const rel of listFiles(tmp)) {
    fsyncFile(path.join(tmp, rel));
    checksums[rel] = sha256File(path.join(tmp, rel));
  }
  const state: TrainerState = { ...payload.state, checksums };
  fs.writeFileSync(path.join(tmp, 'trainer_state.json'), JSON.stringify(state, null, 2) + '\n');
  fsyncFile(path.join(tmp, 'trainer_state.json'));
  if (fs.existsSync(path.join(tmp, 'adapter'))) fsyncDir(path.join(tmp, 'adapter'));
  fsyncDir(tmp);
  // Re-writing the same step (a resume that repeats the final step) replaces the old directory.
  if (fs.existsSync(final)) fs.rmSync(final, { recursive: true, force: true });
  fs.renameSync(tmp, final);
  fsyncDir(root);
  writeFileAtomic(path.join(root, 'latest'), name + '\n');
  pruneCheckpoints(root, keep, name);
  return final;
}

function pruneCheckpoints(root: string, keep: number, current: string): void {
  const steps = fs
    .readdirSync(root)
    .filter((n) => /^step-\d+$/.test(n))
    .sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
  const drop = steps.slice(0, Math.max(0, steps.length - Math.max(1, keep)));
  for (const n of drop) if (n !== current) fs.rmSync(path.join(root, n), { recursive: true, force: true });
  // Temporary directories left by a crash mid-write.
  for (const n of fs.readdirSync(root)) if (n.startsWith('.tmp-')) fs.rmSync(path.join(root, n), { recursive: true, force: true });
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

/** Reads and verifies a checkpoint: every checksum, and the config hash when one is expected. */
export function readCheckpoint(dir: string, expectConfigHash?: string): LoadedCheckpoint {
  const stateFile = path.join(dir, 'trainer_state.json');
  if (!fs.existsSync(stateFile)) throw new UserError(`${dir}: no trainer_state.json (not a checkpoint directory?)`);
  const state = readJsonObject(stateFile) as unknown as TrainerState;
  for (const [rel, sum] of Object.entries(state.checksums ?? {})) {
    const file = path.join(dir, rel);
    if (!fs.existsSync(file)) throw new UserError(`${dir}: checkpoint file '${rel}' is missing`);
    if (sha256File(file) !== sum) throw new UserError(`${file}: checksum mismatch (the checkpoint is corrupt)`);
  }
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

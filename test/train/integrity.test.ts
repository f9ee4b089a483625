// A checkpoint continues only the run that wrote it, on the files it started on: every file of a
// checkpoint is covered by checksums.sha256 (trainer_state.json included), and the model's and
// data's sizes and sha256 are recorded in inputs.json and compared on resume (exit 2 naming the file).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { initBackend } from '../../src/backend/select.js';
import { UserError } from '../../src/errors.js';
import { train } from '../../src/train/trainer.js';
import { tinyConfig, tinyLmRun, tmpDir } from './helpers.js';

await initBackend('wasm');
const base = await tinyLmRun();

/** A run of 2 of 6 steps on its own copy of the model and data; returns the copy and the output. */
async function stoppedRun(tag: string): Promise<{ dir: string; output: string }> {
  const dir = tmpDir(tag);
  fs.cpSync(base, dir, { recursive: true });
  const output = tmpDir(`${tag}-out`);
  await train(tinyConfig(dir), { output, maxSteps: 2, quiet: true });
  return { dir, output };
}

const refused = (...parts: string[]) => (e: unknown) => e instanceof UserError && parts.every((p) => e.message.includes(p)) || assert.fail(String(e));

// Before: an edited samples_seen or optimizer_t resumed silently into a different run.
test('an edited trainer_state.json is refused on resume (exit 2 naming it): checksums.sha256 covers it', async () => {
  const { dir, output } = await stoppedRun('edit-state');
  const ck = path.join(output, 'checkpoints', 'step-2');
  const sums = fs.readFileSync(path.join(ck, 'checksums.sha256'), 'utf8');
  for (const f of ['trainer_state.json', 'trainable.safetensors', 'optimizer.safetensors', 'adapter/adapter_model.safetensors', 'adapter/adapter_config.json']) assert.match(sums, new RegExp(`^[0-9a-f]{64}  ${f}$`, 'm'));
  const file = path.join(ck, 'trainer_state.json');
  const state = JSON.parse(fs.readFileSync(file, 'utf8')) as { samples_seen: number };
  state.samples_seen += 8;
  fs.writeFileSync(file, JSON.stringify(state, null, 2) + '\n');
  await assert.rejects(train(tinyConfig(dir), { output, resume: true, quiet: true }), refused(file, 'checksum mismatch'));
});

test('a data file changed since the run started (one byte, same size) is refused on resume naming it; the model the same', async () => {
  const { dir, output } = await stoppedRun('edit-data');
  const inputs = JSON.parse(fs.readFileSync(path.join(output, 'inputs.json'), 'utf8')) as { hash: string; files: Record<string, { key: string; size: number; sha256: string }> };
  assert.equal(inputs.hash, 'sha256');
  const keys = new Set(Object.values(inputs.files).map((f) => f.key));
  assert.deepEqual([...keys].sort(), ['data.train', 'data.validation', 'model.path']);
  const data = path.join(dir, 'data', 'train.arrow');
  const bytes = fs.readFileSync(data);
  bytes[bytes.length >> 1] ^= 0xff;
  fs.writeFileSync(data, bytes);
  await assert.rejects(train(tinyConfig(dir), { output, resume: true, quiet: true }), refused(data, '(data.train) changed since the run started'));
  bytes[bytes.length >> 1] ^= 0xff;
  fs.writeFileSync(data, bytes);
  const weights = path.join(dir, 'model', 'model.safetensors');
  fs.appendFileSync(weights, Buffer.alloc(1));
  await assert.rejects(train(tinyConfig(dir), { output, resume: true, quiet: true }), refused(weights, '(model.path) changed'));
  fs.truncateSync(weights, fs.statSync(weights).size - 1);
  // The same files again: the run resumes and finishes.
  const s = await train(tinyConfig(dir), { output, resume: true, quiet: true });
  assert.equal(s.steps, 6);
});

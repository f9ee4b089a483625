// TensorBoard event files of real runs (`onelora train` of the demo preset, a resume, a 2-worker
// `launch`), read back by an independent reader: scripts/read-tfevents.py parses every record
// with Python's protobuf, checks both CRC-32Cs with Python's crc32c and compares the scalars with
// metrics.jsonl. CI installs python3-protobuf and python3-crc32c (.ci/run).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { crc32c, tfRecord } from '../../src/watch/tensorboard.js';
import { tmpDir } from '../helpers.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin', 'onelora.js');
const READER = path.join(ROOT, 'scripts', 'read-tfevents.py');

function onelora(...args: string[]): string {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 600_000, env: { ...process.env, ONELORA_LOG: 'warn' } });
  assert.equal(r.status, 0, `onelora ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

interface Read { files: number; records: number; tags: string[]; points: number }
function read(run: string): { status: number | null; out: Read | null; err: string } {
  const r = spawnSync('/usr/bin/python3', [READER, run], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, out: r.status === 0 ? (JSON.parse(r.stdout) as Read) : null, err: r.stderr || String(r.error ?? '') };
}

const eventFiles = (run: string): string[] => fs.readdirSync(path.join(run, 'tensorboard')).sort();
const DEMO = ['--preset', 'demo', '--set', 'eval.generate=false', '--set', 'eval.max_batches=1'];

test('CRC-32C has its check value and a record frames its data', () => {
  // The check value of the Castagnoli CRC (RFC 3720, appendix B.4): crc32c("123456789").
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  const rec = tfRecord(Buffer.from('abc'));
  assert.equal(rec.length, 8 + 4 + 3 + 4);
  assert.equal(rec.readBigUInt64LE(0), 3n);
});

test('onelora train writes event files the independent reader finds equal to metrics.jsonl, across a resume', () => {
  const run = path.join(tmpDir('tb-train'), 'run');
  onelora('train', ...DEMO, '--max-steps', '4', '--set', 'eval.every=2', '--set', 'checkpoint.every=2', '--output', run);
  let r = read(run);
  assert.equal(r.status, 0, r.err);
  for (const tag of ['train/loss', 'train/lr', 'eval/loss', 'throughput/tokens_per_s', 'memory/peak_bytes', 'time/compute_s', 'time/data_wait_s']) {
    assert.ok(r.out!.tags.includes(tag), `${tag} among ${r.out!.tags.join(', ')}`);
  }
  assert.equal(eventFiles(run).length, 1);
  assert.ok(fs.statSync(path.join(run, 'curves.png')).size > 0, 'train draws curves.png when it ends');

  // As if the process had died after step 4 before its checkpoint: the resume trains step 3 again
  // from step 2's and stops there, so step 4's points in the first file are stale. The new file's
  // restart marker drops them; the reader finds no point that metrics.jsonl lacks.
  fs.writeFileSync(path.join(run, 'checkpoints', 'latest'), 'step-2');
  onelora('train', '--resume', run, '--max-steps', '3', '--set', 'eval.generate=false', '--set', 'eval.max_batches=1');
  assert.equal(eventFiles(run).length, 2);
  r = read(run);
  assert.equal(r.status, 0, r.err);

  // --no-tensorboard writes no file; the reader then misses the step it trained (it checks every line).
  onelora('train', '--resume', run, '--max-steps', '4', '--no-tensorboard', '--set', 'eval.generate=false', '--set', 'eval.max_batches=1');
  assert.equal(eventFiles(run).length, 2);
  r = read(run);
  assert.notEqual(r.status, 0);
  assert.match(r.err, /train\/loss at step 4: in metrics\.jsonl, not in the event files/);

  // A flipped byte is caught by a CRC.
  const file = path.join(run, 'tensorboard', eventFiles(run)[0]!);
  const bytes = fs.readFileSync(file);
  bytes[bytes.length - 6]! ^= 0xff;
  fs.writeFileSync(file, bytes);
  r = read(run);
  assert.notEqual(r.status, 0);
  assert.match(r.err, /CRC mismatch/);
});

test('a 2-worker launch writes them too, with the all-reduce time of the step', () => {
  const run = path.join(tmpDir('tb-launch'), 'run');
  onelora('launch', ...DEMO, '--workers', '2', '--max-steps', '2', '--backend', 'wasm', '--output', run);
  const r = read(run);
  assert.equal(r.status, 0, r.err);
  assert.ok(r.out!.tags.includes('time/allreduce_s'));
  assert.ok(r.out!.tags.includes('train/workers'));
  assert.ok(fs.statSync(path.join(run, 'curves.png')).size > 0, 'launch draws curves.png when the run ends');
});

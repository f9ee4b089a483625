// The run directory's life cycle through real `onelora train` processes on the tiny LLaMA run:
// a second run into a directory that holds one is refused and changes nothing (--overwrite starts
// afresh), resuming a finished run leaves its results as they are, --max-steps past the schedule
// is refused, and Ctrl-C stops at a step boundary with a checkpoint, a resume command and exit 130,
// after which the resumed run logs every step once and reports the run's own "before" figures.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { initBackend } from '../../src/backend/select.js';
import { restoreTerminal, Progress } from '../../src/train/metrics.js';
import { interruptible } from '../../src/cli/interrupt.js';
import { train } from '../../src/train/trainer.js';
import { tinyConfig, tinyLmRun, tmpDir } from './helpers.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'onelora.js');

await initBackend('wasm');
const dir = await tinyLmRun();

/** A run config file for the CLI: the tiny run of helpers.ts with `steps` scheduled steps. */
function configFile(steps: number, extra: Record<string, unknown> = {}): string {
  const file = path.join(tmpDir('cfg'), 'run.yaml');
  fs.writeFileSync(file, stringify({
    model: { path: path.join(dir, 'model') }, method: '1lora', task: 'causal-lm',
    data: { train: path.join(dir, 'data/train.arrow'), validation: path.join(dir, 'data/validation.arrow'), max_len: 256 },
    batch: { global: 8, micro: 4 }, optim: { lr: 0.01 }, schedule: { name: 'cosine', warmup_steps: 1, total_steps: steps },
    eval: { every: 0, max_batches: 1, max_new_tokens: 2 }, checkpoint: { every: 2, keep: 2 }, seed: 0, ...extra,
  }));
  return file;
}

const ENV = { ...process.env, ONELORA_LOG: 'info', ONELORA_LOG_FORMAT: undefined };

function onelora(args: string[]): { status: number | null; out: string; stdout: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 300_000, env: ENV });
  return { status: r.status, out: `${r.stdout}${r.stderr}`, stdout: r.stdout };
}

/** Every file under `root`, path → sha256. */
function snapshot(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(path.relative(root, p), createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
    }
  };
  walk(root);
  return out;
}

type Line = { step: number; loss?: number; eval?: Record<string, number> };
const metrics = (out: string): Line[] => fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Line);
const stepLines = (out: string): number[] => metrics(out).filter((l) => !l.eval).map((l) => l.step);

// One finished run that the refusal and finished-resume tests leave untouched.
const finished = tmpDir('finished');
const finishedCfg = configFile(4);
{
  const r = onelora(['train', '--config', finishedCfg, '--output', finished, '--backend', 'wasm']);
  assert.equal(r.status, 0, r.out);
}

test('a second train into a directory that holds a run exits 2 naming it and the ways out, and changes no file', () => {
  const before = snapshot(finished);
  const r = onelora(['train', '--config', finishedCfg, '--output', finished, '--backend', 'wasm']);
  assert.equal(r.status, 2, r.out);
  assert.ok(r.out.includes(`${finished} already holds a run`), r.out);
  for (const way of [`--resume ${finished}`, '--output NEW_DIR', '--overwrite']) assert.ok(r.out.includes(way), `${way}: ${r.out}`);
  assert.deepEqual(snapshot(finished), before);
});

test('--overwrite deletes only the run files onelora writes, then trains afresh', async () => {
  const out = tmpDir('overwrite');
  await train(tinyConfig(dir), { output: out, maxSteps: 3, quiet: true });
  fs.writeFileSync(path.join(out, 'notes.txt'), 'mine');
  await assert.rejects(train(tinyConfig(dir), { output: out, maxSteps: 2, quiet: true }), /already holds a run/);
  await train(tinyConfig(dir), { output: out, maxSteps: 2, quiet: true, overwrite: true });
  assert.deepEqual(stepLines(out), [1, 2], 'one run of 2 steps, not 3 + 2');
  assert.deepEqual(fs.readdirSync(path.join(out, 'checkpoints')).sort(), ['latest', 'step-2']);
  assert.equal(fs.readFileSync(path.join(out, 'notes.txt'), 'utf8'), 'mine');
});

test('resuming a finished run exits 0, says so and leaves summary.json, adapter/ and metrics.jsonl as they are', () => {
  const before = snapshot(finished);
  const r = onelora(['train', '--resume', finished, '--backend', 'wasm']);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /the run is finished \(step 4 of 4\); nothing to train/);
  assert.match(r.stdout, /trained 4\/4 steps/);
  assert.doesNotMatch(r.stdout, / in 0\.0 s|0\.0 MiB/);
  assert.deepEqual(snapshot(finished), before);
});

test('--resume with --max-steps past the end of the schedule exits 2 naming the flag; nothing changes', () => {
  const before = snapshot(finished);
  const r = onelora(['train', '--resume', finished, '--max-steps', '10', '--backend', 'wasm']);
  assert.equal(r.status, 2, r.out);
  assert.match(r.out, /--max-steps 10 is past the end of the schedule .*\(4 steps/);
  assert.match(r.out, /schedule\.total_steps=10 --output NEW_DIR/);
  assert.deepEqual(snapshot(finished), before);
});

test('a resume after a death between a step\'s log line and its checkpoint logs every step once', async () => {
  const out = tmpDir('died');
  await train(tinyConfig(dir, { eval: { every: 0, max_batches: 1 } }), { output: out, maxSteps: 4, quiet: true });
  // As if killed after logging steps 3 and 4 but before step 4's checkpoint.
  fs.rmSync(path.join(out, 'checkpoints', 'step-4'), { recursive: true });
  fs.writeFileSync(path.join(out, 'checkpoints', 'latest'), 'step-2');
  const s = await train(tinyConfig(dir), { output: out, resume: true, quiet: true });
  assert.deepEqual(stepLines(out), [1, 2, 3, 4, 5, 6]);
  assert.equal(metrics(out).filter((l) => l.eval && l.step === 0).length, 1);
  assert.deepEqual(s.eval_before, metrics(out).find((l) => l.eval && l.step === 0)?.eval, 'the run\'s own evaluation before training');
});

/** Spawns `onelora ARGS`; resolves on exit with its output. `onLine` sees stderr as it arrives. */
function running(args: string[], onText: (text: string, child: ReturnType<typeof spawn>) => void): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => {
      out += b.toString();
      onText(out, child);
    });
    child.on('exit', (code) => resolve({ code, out }));
  });
}

test('Ctrl-C stops train at a step boundary with a checkpoint of that step, prints the resume command, exits 130; the resume logs each step once', async () => {
  const out = path.join(tmpDir('sigint'), 'run');
  const cfg = configFile(200, { checkpoint: { every: 1000, keep: 2 } });
  let sent = false;
  const r = await running(['train', '--config', cfg, '--output', out, '--backend', 'wasm', '--max-steps', '40'], (text, child) => {
    if (!sent && /step 1\/40/.test(text)) {
      sent = true;
      child.kill('SIGINT');
    }
  });
  assert.equal(r.code, 130, r.out);
  const m = /interrupted: stopped after step (\d+) of 40; it resumes from step \1 \((.+)\) with:\n {2}(onelora train .+)\n/.exec(r.out);
  assert.ok(m, r.out);
  const step = Number(m[1]);
  assert.ok(step >= 1 && step < 40);
  assert.equal(m[2], path.join(out, 'checkpoints', `step-${step}`));
  assert.equal(m[3], `onelora train --resume ${out} --max-steps 40 --backend wasm`);
  assert.equal(fs.readFileSync(path.join(out, 'checkpoints', 'latest'), 'utf8').trim(), `step-${step}`);
  assert.ok(!fs.existsSync(path.join(out, 'summary.json')), 'an unfinished run has no summary');
  const again = onelora(m[3].split(' ').slice(1));
  assert.equal(again.status, 0, again.out);
  assert.deepEqual(stepLines(out), Array.from({ length: 40 }, (_, i) => i + 1));
  assert.match(again.stdout, /validation loss: +[\d.]+ before → [\d.]+ after/);
  const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')) as { eval_before: Record<string, number> | null };
  assert.deepEqual(summary.eval_before, metrics(out).find((l) => l.eval && l.step === 0)?.eval);
});

test('a second Ctrl-C stops at once: terminal restored, the resume command printed, exit 130', async () => {
  const out = tmpDir('sigint2');
  const exit = process.exit;
  const write = process.stderr.write.bind(process.stderr);
  let code: number | undefined;
  let written = '';
  let aborted: AbortSignal | null = null;
  const listeners = process.listenerCount('SIGINT');
  process.exit = ((c?: number) => void (code = c)) as typeof process.exit;
  process.stderr.write = ((chunk: string | Uint8Array) => ((written += String(chunk)), true)) as typeof process.stderr.write;
  try {
    const run = interruptible(out, `onelora train --resume ${out}`, (signal) => {
      aborted = signal;
      process.emit('SIGINT', 'SIGINT');
      assert.ok(signal.aborted, 'the first Ctrl-C asks for a stop at the next step boundary');
      assert.equal(code, undefined);
      process.emit('SIGINT', 'SIGINT');
      return Promise.resolve('stopped');
    });
    assert.equal(await run, 'stopped');
  } finally {
    process.exit = exit;
    process.stderr.write = write;
  }
  assert.ok(aborted);
  assert.equal(code, 130);
  assert.match(written, /interrupted again: stopped at once.*nothing to resume/);
  assert.equal(process.listenerCount('SIGINT'), listeners, 'the handlers are removed afterwards');
});

test('restoreTerminal gives a terminal the cursor and line wrap the progress bar hid', () => {
  const stderr = process.stderr as NodeJS.WriteStream & { isTTY: boolean };
  const tty = stderr.isTTY;
  const write = stderr.write.bind(stderr);
  let written = '';
  stderr.isTTY = true;
  stderr.write = ((chunk: string | Uint8Array) => ((written += String(chunk)), true)) as typeof stderr.write;
  try {
    new Progress(0, 10);
    assert.ok(written.includes('\x1b[?25l'), 'the bar hid the cursor');
    restoreTerminal();
  } finally {
    stderr.write = write;
    stderr.isTTY = tty;
  }
  assert.ok(written.includes('\x1b[?25h'), 'cursor shown again');
  assert.ok(written.includes('\x1b[?7h'), 'line wrap on again');
});

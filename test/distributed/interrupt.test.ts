// `onelora launch` as a real process tree (a coordinator and 2 worker processes on loopback, the
// tiny LLaMA run of test/train/helpers.ts): a second launch into a run directory is refused and
// changes nothing; Ctrl-C stops the group at a step boundary — rank 0 checkpoints the last finished
// step, every worker exits — prints the resume command and exits 130; that command finishes the
// run with each step logged once and the run's own "before" evaluation in its summary.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { initBackend } from '../../src/backend/select.js';
import { alive } from '../helpers.js';
import { tinyLmRun, tmpDir } from '../train/helpers.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'onelora.js');
const ENV = { ...process.env, ONELORA_LOG: 'info', ONELORA_LOG_FORMAT: 'json' };

await initBackend('wasm');
const dir = await tinyLmRun();
const cfg = path.join(tmpDir('cfg'), 'run.yaml');
fs.writeFileSync(cfg, stringify({
  model: { path: path.join(dir, 'model') }, method: '1lora', task: 'causal-lm',
  data: { train: path.join(dir, 'data/train.arrow'), validation: path.join(dir, 'data/validation.arrow'), max_len: 256 },
  batch: { global: 8, micro: 2 }, optim: { lr: 0.01 }, schedule: { name: 'cosine', warmup_steps: 1, total_steps: 200 },
  eval: { every: 0, max_batches: 1 }, checkpoint: { every: 1000, keep: 2 }, seed: 0, distributed: { allreduce_timeout_s: 20 },
}));

type Line = { step: number; eval?: Record<string, number> };
const metrics = (out: string): Line[] => fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Line);

test('Ctrl-C in launch: the workers stop at a step boundary and exit, a checkpoint of that step, the resume command, exit 130; the resume logs each step once', async () => {
  const out = path.join(tmpDir('launch-sigint'), 'run');
  const args = ['launch', '--config', cfg, '--workers', '2', '--output', out, '--backend', 'wasm', '--max-steps', '30'];
  const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    let sent = false;
    child.stdout.on('data', (b: Buffer) => (text += b.toString()));
    child.stderr.on('data', (b: Buffer) => {
      text += b.toString();
      if (!sent && text.includes('"msg":"step 1/30"')) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    child.on('exit', (code) => resolve({ code, out: text }));
  });
  assert.equal(r.code, 130, r.out);
  const m = /interrupted: stopped after step (\d+) of 30; it resumes from step \1 \((.+)\) with:\n {2}(onelora launch .+)\n/.exec(r.out);
  assert.ok(m, r.out);
  const step = Number(m[1]);
  assert.equal(m[2], path.join(out, 'checkpoints', `step-${step}`));
  assert.equal(m[3], `onelora launch --resume ${out} --workers 2 --max-steps 30 --backend wasm`);
  assert.equal(fs.readFileSync(path.join(out, 'checkpoints', 'latest'), 'utf8').trim(), `step-${step}`);
  // The workers (their own process group, out of the terminal's reach) exited on the coordinator's stop.
  // Worker lines come through the launcher tagged `[rank N] ` (as torchrun tags them).
  const workers = [...new Set(r.out.split('\n').filter((l) => l.includes('"component":"worker"')).map((l) => (JSON.parse(l.replace(/^\[rank \d+\] /, '')) as { pid: number }).pid))];
  assert.equal(workers.length, 2, r.out);
  for (const pid of workers) assert.ok(!alive(pid), `worker ${pid} still runs`);
  assert.doesNotMatch(r.out, /restarting it/);

  // The same directory again without --resume: refused, nothing changed.
  const before = fs.readFileSync(path.join(out, 'metrics.jsonl'));
  const again = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', env: ENV, timeout: 120_000 });
  assert.equal(again.status, 2, again.stderr);
  assert.ok(again.stderr.includes(`${out} already holds a run`) && again.stderr.includes(`--resume ${out}`), again.stderr);
  assert.ok(fs.readFileSync(path.join(out, 'metrics.jsonl')).equals(before));

  const resumed = spawnSync(process.execPath, [BIN, ...m[3].split(' ').slice(1)], { cwd: ROOT, encoding: 'utf8', env: ENV, timeout: 300_000 });
  assert.equal(resumed.status, 0, resumed.stderr);
  const lines = metrics(out);
  assert.deepEqual(lines.filter((l) => !l.eval).map((l) => l.step), Array.from({ length: 30 }, (_, i) => i + 1));
  assert.match(resumed.stdout, /validation loss: +[\d.]+ before → [\d.]+ after/);
  const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')) as { eval_before: Record<string, number> | null; steps: number };
  assert.equal(summary.steps, 30);
  assert.deepEqual(summary.eval_before, lines.find((l) => l.eval && l.step === 0)?.eval);
});

// One parameter count everywhere (src/peft/count.ts): `params`, `train` and `bench methods` report
// the same adapter count for 1LoRA on the tiny ViT demo, with the new classifier apart — the
// processes as a user runs them. Σ out features of the demo ViT's linears and its 10-class head are
// written out here from its config.json, not taken from onelora.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { tmpDir } from '../helpers.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

function onelora(...args: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'onelora.js'), ...args, '--json'], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as Record<string, unknown>;
}

/** 1LoRA trains one vector per adapted linear, of its out features: q, k, v, o, fc1, fc2 per layer. */
function expectedCounts(): { trainable: number; head: number } {
  const c = JSON.parse(fs.readFileSync(path.join(ROOT, 'models', 'demo-vit', 'config.json'), 'utf8')) as { hidden_size: number; intermediate_size: number; num_hidden_layers: number };
  const d = c.hidden_size;
  return { trainable: c.num_hidden_layers * (4 * d + c.intermediate_size + d), head: d * 10 + 10 };
}

void test('params, train and bench methods count 1LoRA on the tiny ViT alike: the adapter, and the new head apart', () => {
  const want = expectedCounts();
  const p = onelora('params', '--model', 'models/demo-vit', '--method', '1lora', '--num-labels', '10');
  assert.deepEqual({ trainable: p.trainable, head: p.head }, want, 'params');
  const dir = tmpDir('count');
  const t = onelora('train', '--preset', 'tiny-vit-demo', '--max-steps', '1', '--set', 'eval.max_batches=1', '--output', path.join(dir, 'run'), '--backend', 'wasm');
  assert.deepEqual({ trainable: t.trainable, head: t.head }, want, 'train');
  const b = onelora('bench', 'methods', '--task', 'tiny-vit', '--methods', '1lora', '--steps', '1', '--warmup-steps', '0', '--backend', 'wasm', '--report', path.join(dir, 'report'));
  const row = (b.results as Record<string, unknown>[])[0]!;
  assert.deepEqual({ trainable: row.trainable, head: row.head }, want, 'bench methods');
  const md = fs.readFileSync(path.join(dir, 'report', 'report.md'), 'utf8');
  assert.match(md, new RegExp(`\\| 1lora \\|.*\\| ${want.trainable.toLocaleString('en-US')} \\| ${want.head.toLocaleString('en-US')} \\|`));
  fs.rmSync(dir, { recursive: true, force: true });
});

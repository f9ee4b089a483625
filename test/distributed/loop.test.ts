// One training loop (src/train/loop.ts): a single process (`train`) and a 2-rank group (`launch`)
// drive the same rules and outputs, so they write the same metrics.jsonl fields per kind of line,
// checkpoint the same steps and write the same summary.json keys.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { initBackend } from '../../src/backend/select.js';
import { train } from '../../src/train/trainer.js';
import { launch } from '../../coordinator/launcher.js';
import { tinyConfig, tinyLmRun, tmpDir } from '../train/helpers.js';

await initBackend('wasm');
const dir = await tinyLmRun();
const cfg = () => tinyConfig(dir, { batch: { global: 8, micro: 2 } }, ['distributed.allreduce_timeout_s=20', 'eval.every=2', 'checkpoint.every=2', 'checkpoint.keep=3']);
const STEPS = 3;

/** Per kind of line (a step's, an evaluation's): the steps it was written at and the sorted field names. */
function shape(out: string): Record<string, { steps: number[]; fields: string[] }> {
  const lines = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const kinds: Record<string, { steps: number[]; fields: Set<string> }> = {};
  for (const l of lines) {
    const k = 'eval' in l ? 'eval' : 'step';
    kinds[k] ??= { steps: [], fields: new Set() };
    kinds[k].steps.push(l.step as number);
    for (const f of Object.keys(l)) kinds[k].fields.add(f);
    if ('eval' in l) for (const f of Object.keys(l.eval as object)) kinds[k].fields.add(`eval.${f}`);
  }
  return Object.fromEntries(Object.entries(kinds).map(([k, v]) => [k, { steps: v.steps, fields: [...v.fields].sort() }]));
}

const summaryKeys = (out: string): string[] => Object.keys(JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')) as object).sort();

test('train and a 2-rank launch write the same metrics fields, checkpoint the same steps, and the same summary keys', async () => {
  const single = tmpDir('loop-single');
  await train(cfg(), { output: single, maxSteps: STEPS, quiet: true });
  const group = tmpDir('loop-group');
  const r = await launch({ cfg: cfg(), workers: 2, output: group, maxSteps: STEPS, quiet: true, backend: 'wasm', env: { ONELORA_LOG: 'warn' }, heartbeatTimeoutMs: 20_000 });
  assert.equal(r.summary.steps, STEPS);

  const a = shape(single);
  const b = shape(group);
  assert.deepEqual(b, a);
  assert.deepEqual(a.step?.steps, [1, 2, 3]);
  assert.deepEqual(a.eval?.steps, [0, 2, 3], 'before training, every 2 steps and at the last');

  const checkpoints = (out: string) => fs.readdirSync(path.join(out, 'checkpoints')).sort();
  assert.deepEqual(checkpoints(group), checkpoints(single));
  assert.deepEqual(checkpoints(single), ['latest', 'step-2', 'step-3']);
  for (const out of [single, group]) assert.ok(fs.existsSync(path.join(out, 'adapter', 'adapter_model.safetensors')), out);

  // The same summary keys, the held-out examples included (rank 0 answers them for the group).
  assert.deepEqual(summaryKeys(group), summaryKeys(single));
  assert.ok(summaryKeys(single).includes('examples'), 'the tiny LM has a tokenizer: its summary shows examples');
  type Example = { question: string; before: string; after: string; expected: string };
  const examples = (out: string): Example[] => (JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')) as { examples: Example[] }).examples;
  const [se, ge] = [examples(single), examples(group)];
  assert.deepEqual(ge.map((e) => [e.question, e.before, e.expected]), se.map((e) => [e.question, e.before, e.expected]));
  assert.equal(ge.length, se.length);
  for (const e of ge) assert.equal(typeof e.after, 'string');
});

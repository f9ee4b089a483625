// The commands of docs/depth.md's demo, run as written (in this process, `runs/tiny-depth-demo`
// replaced by a temporary directory): the tiny depth demo trains and its RMSE and AbsRel fall;
// `eval depth` on the adapter reproduces the trainer's evaluation; `onelora depth` writes a
// colour-mapped PNG and a float32 .npy at the image's size; `merge` gives the same metrics.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { registerBench } from '../../src/cli/commands/bench.js';
import { registerDepth } from '../../src/cli/commands/depth.js';
import { registerEval } from '../../src/cli/commands/eval.js';
import { registerMerge } from '../../src/cli/commands/merge.js';
import { registerParams } from '../../src/cli/commands/params.js';
import { registerTrain } from '../../src/cli/commands/train.js';
import { repoRoot } from '../../src/config/index.js';
import { readNpy } from '../../src/data/depth-prepare.js';
import { tmpDir } from '../helpers.js';
import { runCommands } from './helpers.js';

const ROOT = repoRoot();
const DOC = fs.readFileSync(path.join(ROOT, 'docs', 'depth.md'), 'utf8');
const commands = DOC.split('\n').filter((l) => l.startsWith('npx onelora ')).map((l) => l.slice('npx onelora '.length));
const run = tmpDir('depth-demo');
const REGISTERS = [registerTrain, registerEval, registerDepth, registerMerge, registerParams, registerBench];

function argv(line: string): string[] {
  return line.replaceAll('runs/tiny-depth-demo', path.relative(ROOT, run)).split(/\s+/);
}

async function onelora(line: string): Promise<Record<string, unknown> | string> {
  const cwd = process.cwd();
  process.chdir(ROOT);
  try {
    const r = await runCommands(REGISTERS, ...argv(line));
    assert.equal(r.code, 0, `${line}\n${r.err}`);
    const last = r.out.trim().split('\n').pop() ?? '';
    return line.includes('--json') ? (JSON.parse(last) as Record<string, unknown>) : r.out;
  } finally {
    process.chdir(cwd);
  }
}

const demo = (prefix: string): string[] => commands.filter((c) => c.startsWith(prefix) && (c.includes('tiny-depth-demo') || c.includes('depth-anything-vitl14')));

void test('docs/depth.md demo: train, eval depth, depth (.png, .npy), merge', async () => {
  assert.equal(demo('').length, 6, 'the demo block and the params line');
  const out = (await onelora(demo('train')[0]!)) as string;
  const rmse = /RMSE: +([\d.]+) m before → ([\d.]+) m after/.exec(out);
  const absRel = /AbsRel: +([\d.]+) before → ([\d.]+) after/.exec(out);
  assert.ok(rmse && absRel, out);
  console.log(`tiny-depth-demo: RMSE ${rmse[1]} → ${rmse[2]} m, AbsRel ${absRel[1]} → ${absRel[2]}`);
  assert.ok(Number(rmse[2]) < Number(rmse[1]), 'RMSE falls');
  assert.ok(Number(absRel[2]) < Number(absRel[1]), 'AbsRel falls');
  const summary = JSON.parse(fs.readFileSync(path.join(run, 'summary.json'), 'utf8')) as { eval_after: Record<string, number> };

  const ev = (await onelora(demo('eval depth')[0]!)) as Record<string, number>;
  assert.equal(ev.samples, 24);
  assert.ok(Math.abs(ev.rmse! - summary.eval_after.rmse!) < 1e-9, 'eval depth is the trainer evaluation');

  const [png, npy] = demo('depth ');
  await onelora(png!);
  const meta = await sharp(path.join(run, 'depth.png')).metadata();
  assert.deepEqual([meta.width, meta.height, meta.channels], [84, 84, 3]);
  const r = (await onelora(npy!)) as Record<string, number>;
  const a = readNpy(path.join(run, 'depth.npy'));
  assert.deepEqual(a.shape, [84, 84]);
  assert.ok(a.data.every((v) => v > 0 && v < 80), 'metric depth in (0, max_depth)');
  assert.equal(Math.min(...a.data), r.min);

  await onelora(demo('merge')[0]!);
  const merged = (await onelora(`eval depth --model ${path.join(run, 'merged')} --data data/demo/depth-outdoor --input-size 56 --json`)) as Record<string, number>;
  assert.ok(Math.abs(merged.rmse! - ev.rmse!) < 1e-3, `merged ${merged.rmse} vs adapter ${ev.rmse}`);
});

void test('docs/depth.md: params of depth-anything-vitl14', async () => {
  const r = (await onelora(demo('params')[0]!)) as Record<string, number>;
  assert.equal(r.trainable, 393_216);
});

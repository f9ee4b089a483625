// `onelora plot`: the commands docs/training.md shows, run as written in a directory holding the
// runs they name (metrics.jsonl of two real 20-step demo runs, 1LoRA and LoRA), and the chart's
// panels, legend and refusals.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { UserError } from '../../src/errors.js';
import { curvesSpec } from '../../src/watch/plot.js';
import { render } from '../../src/watch/plot-render.js';
import { tmpDir } from '../helpers.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin', 'onelora.js');
const RUNS = path.join(ROOT, 'test/fixtures/plots/runs');

test('the plot commands of docs/training.md run as written and write readable charts', async () => {
  const doc = fs.readFileSync(path.join(ROOT, 'docs/training.md'), 'utf8');
  const commands = doc.split('\n').filter((l) => l.startsWith('npx onelora plot '));
  assert.ok(commands.length >= 2, 'docs/training.md shows onelora plot');
  const cwd = tmpDir('plot-docs');
  fs.cpSync(RUNS, path.join(cwd, 'runs'), { recursive: true });
  for (const cmd of commands) {
    const args = cmd.replace(/^npx onelora /, '').split(/\s+/);
    const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ONELORA_LOG: 'warn' } });
    assert.equal(r.status, 0, `${cmd}: ${r.stdout}${r.stderr}`);
    const out = path.join(cwd, args[args.indexOf('--out') + 1]!);
    if (out.endsWith('.png')) {
      const meta = await sharp(out).metadata();
      assert.ok(meta.width! >= 800 && meta.height! >= 500, `${cmd}: ${meta.width} × ${meta.height}`);
    } else {
      assert.match(fs.readFileSync(out, 'utf8'), /<svg[\s\S]*training loss/);
    }
  }
});

test('curves of two runs: a panel for the training loss and each evaluation metric, a line per run, the legend by run name', async () => {
  const dirs = [path.join(RUNS, 'demo'), path.join(RUNS, 'demo-lora')];
  const spec = curvesSpec(dirs);
  const values = (spec as { data: { values: { run: string; panel: string; step: number }[] } }).data.values;
  assert.deepEqual([...new Set(values.map((v) => v.panel))].sort(), ['eval loss', 'training loss']);
  assert.deepEqual([...new Set(values.map((v) => v.run))], ['demo', 'demo-lora']);
  // One point per logged step and run: 20 steps, 5 evaluations (before, and every 5 steps).
  assert.equal(values.filter((v) => v.run === 'demo' && v.panel === 'training loss').length, 20);
  assert.equal(values.filter((v) => v.run === 'demo-lora' && v.panel === 'eval loss').length, 5);
  const r = await render(spec);
  assert.ok(r.svg.includes('demo-lora'), 'the legend names the runs');
  // A run being written (or killed mid-line): its torn last line is left out, not an error.
  const live = tmpDir('plot-live');
  fs.writeFileSync(path.join(live, 'metrics.jsonl'), fs.readFileSync(path.join(dirs[0]!, 'metrics.jsonl'), 'utf8') + '{"step":21,"loss":0.7');
  assert.equal((curvesSpec([live]) as { data: { values: unknown[] } }).data.values.length, values.filter((v) => v.run === 'demo').length);
  const one = curvesSpec(dirs, 'lr') as { data: { values: { panel: string }[] } };
  assert.deepEqual([...new Set(one.data.values.map((v) => v.panel))], ['learning rate']);
});

test('plot refuses what it cannot draw, naming what there is', () => {
  assert.throws(() => curvesSpec([path.join(RUNS, 'demo')], 'eval.bleu'), (e: unknown) => e instanceof UserError && /--metric eval\.bleu: no run has it; the runs have .*eval\.loss/.test(e.message));
  const empty = tmpDir('plot-empty');
  assert.throws(() => curvesSpec([empty]), (e: unknown) => e instanceof UserError && e.message.includes('no metrics.jsonl'));
  const r = spawnSync(process.execPath, [BIN, 'plot', path.join(RUNS, 'demo'), '--out', path.join(empty, 'c.jpg')], { encoding: 'utf8', env: { ...process.env, ONELORA_LOG: 'warn' } });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /give a \.png or \.svg file/);
});

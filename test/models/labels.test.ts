// A ViT classification run's class names (the dataset's `onelora.classes`) travel into the
// adapter's id2label/label2id, into the merged model's config.json, and into what predict prints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { initBackend } from '../../src/backend/select.js';
import { registerMerge } from '../../src/cli/commands/merge.js';
import { registerPredict } from '../../src/cli/commands/predict.js';
import { loadPreset, repoRoot } from '../../src/config/index.js';
import { Dataset } from '../../src/data/arrow-file.js';
import { train } from '../../src/train/trainer.js';
import { runCommands, tmpDir } from './helpers.js';

await initBackend('wasm');

const cli = (...args: string[]) => runCommands([registerMerge, registerPredict], ...args, '--backend', 'wasm');

void test('the dataset\'s class names reach the adapter\'s and the merged config\'s id2label/label2id, and predict prints them', async () => {
  const cfg = loadPreset('tiny-vit-demo', ['eval.max_batches=1']);
  const ds = Dataset.open(cfg.data.train);
  const classes = ds.info.classes!;
  ds.close();
  assert.ok(classes.length === 10 && !classes.includes('LABEL_0'));
  const out = tmpDir();
  await train(cfg, { output: out, maxSteps: 1, quiet: true, backend: 'wasm' });
  const adapter = path.join(out, 'adapter');
  const acfg = JSON.parse(fs.readFileSync(path.join(adapter, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  const id2label = Object.fromEntries(classes.map((c, i) => [String(i), c]));
  const label2id = Object.fromEntries(classes.map((c, i) => [c, i]));
  assert.deepEqual(acfg.id2label, id2label);
  assert.deepEqual(acfg.label2id, label2id);

  const img = path.join(tmpDir(), 'x.png');
  await sharp(Buffer.from(Array.from({ length: 32 * 32 * 3 }, (_, i) => (i * 53) % 256)), { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(img);
  const base = path.join(repoRoot(), 'models', 'demo-vit');
  const p = await cli('predict', '--model', base, '--adapter', adapter, '--image', img, '--json');
  assert.equal(p.code, 0, p.err);
  const top5 = (JSON.parse(p.out.trim().split('\n').at(-1)!) as { top5: { index: number; label: string }[] }).top5;
  for (const t of top5) assert.equal(t.label, classes[t.index]);

  const merged = path.join(tmpDir(), 'merged');
  const m = await cli('merge', '--model', base, '--adapter', adapter, '--out', merged);
  assert.equal(m.code, 0, m.err);
  const mcfg = JSON.parse(fs.readFileSync(path.join(merged, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(mcfg.id2label, id2label);
  assert.deepEqual(mcfg.label2id, label2id);
  const human = await cli('predict', '--model', merged, '--image', img);
  assert.equal(human.code, 0, human.err);
  const firstLine = human.out.trim().split('\n')[0]!;
  assert.equal(firstLine.split(/\s+/)[2], classes[top5[0]!.index], firstLine);

  // Names that do not fit the classifier are the adapter's error, named.
  const bad = tmpDir();
  fs.copyFileSync(path.join(adapter, 'adapter_model.safetensors'), path.join(bad, 'adapter_model.safetensors'));
  fs.writeFileSync(path.join(bad, 'adapter_config.json'), JSON.stringify({ ...acfg, id2label: { 0: 'a', 1: 'b' } }));
  const wrong = await cli('predict', '--model', base, '--adapter', bad, '--image', img);
  assert.equal(wrong.code, 2);
  assert.match(wrong.err, /2 class names for a classifier of 10 classes/);
  fs.writeFileSync(path.join(bad, 'adapter_config.json'), JSON.stringify({ ...acfg, id2label: ['a'] }));
  const shape = await cli('predict', '--model', base, '--adapter', bad, '--image', img);
  assert.equal(shape.code, 2);
  assert.match(shape.err, /--adapter: .*adapter_config\.json: 'id2label' must map every index/);
});

// Token data against the model before the first step (src/train/token-check.ts): data tokenized
// for another vocabulary is exit 2 naming both and the fix, for `train`, `train --dry-run` and old
// datasets that record no vocabulary (their ids are scanned), instead of a GatherV2 error at step 1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { lmBatch, lmSchema } from '../../src/data/arrow.js';
import { ArrowFileWriter, Dataset } from '../../src/data/arrow-file.js';
import { readLmMeta, scanMaxTokenId } from '../../src/data/lm-meta.js';
import { prepare } from '../../src/data/prepare.js';
import { loadTokenizer } from '../../src/data/tokenizer.js';
import { checkTokenData } from '../../src/train/token-check.js';
import { throwsUser, tmpDir } from '../helpers.js';
import { writeTinyTokenizer } from './helpers.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const DEMO_MODEL = path.join(ROOT, 'models', 'demo-llama');

function cli(args: string[]): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'onelora.js'), ...args], { encoding: 'utf8', cwd: ROOT, timeout: 120_000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

function metamathInput(dir: string, n = 12): string {
  const file = path.join(dir, 'mm.json');
  const rows = Array.from({ length: n }, (_, i) => ({ query: `Ava has ${i} apples and buys ${i + 3} more. How many?`, response: `${i} + ${i + 3} = ${2 * i + 3}. The answer is: ${2 * i + 3}` }));
  fs.writeFileSync(file, JSON.stringify(rows));
  return file;
}

/** An Arrow file as onelora wrote it before the vocabulary was recorded: only onelora.tokenizer. */
async function oldDataset(file: string, ids: number[]): Promise<void> {
  const w = new ArrowFileWriter(file, lmSchema('llama-2'));
  w.write(lmBatch(w.schema, [{ inputIds: ids, labels: ids.map((x, i) => (i < 2 ? -100 : x)) }, { inputIds: [1, 5, 6], labels: [-100, 5, 6] }]));
  await w.close();
}

void test('prepare records the vocabulary size, the tokenizer.json hash and the template', async () => {
  const dir = tmpDir('tokcheck');
  const out = path.join(dir, 'data');
  await prepare({ dataset: 'metamath', input: metamathInput(dir), out, tokenizer: DEMO_MODEL, maxLen: 256 });
  const ds = Dataset.open(path.join(out, 'train.arrow'));
  try {
    const meta = readLmMeta(ds);
    assert.equal(meta.vocabSize, 384);
    assert.equal(meta.tokenizerSha256, loadTokenizer(DEMO_MODEL).sha256);
    assert.match(meta.tokenizerSha256 ?? '', /^[0-9a-f]{64}$/);
    assert.equal(meta.template, 'alpaca');
  } finally {
    ds.close();
  }
  const shown = (await import('../../src/data/inspect.js')).inspect(out);
  assert.equal(shown.example.vocab_size, 384);
  assert.equal(shown.example.template, 'alpaca');
});

void test('data prepared with llama-2 for the demo model: train and --dry-run exit 2 naming both vocabularies and the fix', async () => {
  const dir = tmpDir('tokcheck');
  const out = path.join(dir, 'llama2');
  await prepare({ dataset: 'metamath', input: metamathInput(dir, 40), out, tokenizer: 'llama-2', maxLen: 256 });
  const sets = ['--set', `data.train=${path.join(out, 'train.arrow')}`, '--set', `data.validation=${path.join(out, 'validation.arrow')}`];
  for (const extra of [['--dry-run'], ['--max-steps', '1']]) {
    const r = cli(['train', '--preset', 'demo', ...sets, '--output', path.join(dir, 'run'), ...extra]);
    assert.equal(r.status, 2, `${extra.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /data\.train: .*train\.arrow was prepared with tokenizer llama-2 \(vocabulary 32,000\)/);
    assert.match(r.stderr, /vocabulary of 384/);
    assert.match(r.stderr, /--tokenizer models\/demo-llama/);
    assert.doesNotMatch(r.stderr, /GatherV2/);
  }
  assert.equal(fs.existsSync(path.join(dir, 'run', 'metrics.jsonl')), false);
});

void test('an old dataset without the vocabulary is scanned: ids past the embedding are refused, ids inside it pass', async () => {
  const dir = tmpDir('tokcheck');
  const bad = path.join(dir, 'bad.arrow');
  await oldDataset(bad, [1, 13866, 29889, 2]);
  const ds = Dataset.open(bad);
  try {
    assert.equal(scanMaxTokenId(ds), 29889);
    throwsUser(() => checkTokenData(ds, 'data.train', { ref: 'models/demo-llama', vocabSize: 384 }, null),
      'data.train', bad, 'token ids go up to 29,889', 'vocabulary of 384', '--tokenizer');
    checkTokenData(ds, 'data.train', { ref: 'llama2-7b', vocabSize: 32000 }, null);
  } finally {
    ds.close();
  }
  // The committed demo data predates the recorded vocabulary in some clones; it fits the demo model.
  const demo = Dataset.open(path.join(ROOT, 'data', 'demo', 'metamath-llama', 'train.arrow'));
  try {
    checkTokenData(demo, 'data.train', { ref: 'models/demo-llama', vocabSize: 384 }, loadTokenizer(DEMO_MODEL));
  } finally {
    demo.close();
  }
});

void test('another tokenizer of the same size (another tokenizer.json) is refused when the run has a tokenizer', async () => {
  const dir = tmpDir('tokcheck');
  const a = writeTinyTokenizer(path.join(dir, 'tok-a'));
  const b = writeTinyTokenizer(path.join(dir, 'tok-b'));
  // Same vocabulary size, other content: one token renamed.
  const jb = JSON.parse(fs.readFileSync(path.join(b, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
  const id = jb.model.vocab.is!;
  delete jb.model.vocab.is;
  jb.model.vocab.si = id;
  fs.writeFileSync(path.join(b, 'tokenizer.json'), JSON.stringify(jb));
  const out = path.join(dir, 'data');
  await prepare({ dataset: 'metamath', input: metamathInput(dir), out, tokenizer: a, maxLen: 256 });
  const ds = Dataset.open(path.join(out, 'train.arrow'));
  try {
    const vocab = loadTokenizer(a).vocabSize;
    checkTokenData(ds, 'data.train', { ref: 'm', vocabSize: vocab }, loadTokenizer(a));
    throwsUser(() => checkTokenData(ds, 'data.train', { ref: 'm', vocabSize: vocab }, loadTokenizer(b)), 'another tokenizer.json', 'tok-b');
  } finally {
    ds.close();
  }
});

void test('data whose every response was cut by --max-len: train and --dry-run exit 2 naming the file and the count, before any step', async () => {
  const dir = tmpDir('tokcheck');
  const out = path.join(dir, 'cut');
  // 24 tokens hold BOS and part of the Alpaca prompt, never a response token.
  await prepare({ dataset: 'metamath', input: metamathInput(dir, 40), out, tokenizer: DEMO_MODEL, maxLen: 24 });
  const sets = ['--set', `data.train=${path.join(out, 'train.arrow')}`, '--set', `data.validation=${path.join(out, 'validation.arrow')}`];
  for (const extra of [['--dry-run'], ['--max-steps', '1']]) {
    const r = cli(['train', '--preset', 'demo', ...sets, '--output', path.join(dir, 'run'), ...extra]);
    assert.equal(r.status, 2, `${extra.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /data\.train: .*train\.arrow has no supervised token: all [\d,]+ rows have every label -100/);
    assert.match(r.stderr, /--max-len/);
  }
  assert.equal(fs.existsSync(path.join(dir, 'run', 'metrics.jsonl')), false);
});

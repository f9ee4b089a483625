import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { readLm } from '../../src/data/arrow.js';
import { Dataset } from '../../src/data/arrow-file.js';
import { alpacaPrompt, IGNORE_INDEX } from '../../src/data/metamath.js';
import { prepare } from '../../src/data/prepare.js';
import { inspect } from '../../src/data/inspect.js';
import { loadTokenizer } from '../../src/data/tokenizer.js';
import { UserError } from '../../src/errors.js';
import { tmpDir } from '../helpers.js';
import { writeTinyTokenizer } from './helpers.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

function rowsOf(n: number): { query: string; response: string; type: string; original_question: string }[] {
  return Array.from({ length: n }, (_, i) => ({
    query: `What is ${i} + ${i + 1}?`,
    response: `${i} + ${i + 1} = ${2 * i + 1}. The answer is: ${2 * i + 1}`,
    type: 'GSM_Rephrased',
    original_question: `q${i}`,
  }));
}

function readAll(file: string): { ids: number[][]; labels: number[][]; lengths: number[] } {
  const ds = Dataset.open(file);
  try {
    const c = readLm(ds.rows(Array.from({ length: ds.numRows }, (_, i) => i)));
    return { ids: c.inputIds.map((a) => [...a]), labels: c.labels.map((a) => [...a]), lengths: [...c.lengths] };
  } finally {
    ds.close();
  }
}

void test('the Alpaca prompt is MetaMath\'s, verbatim', () => {
  assert.equal(alpacaPrompt('Q?'),
    'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nQ?\n\n### Response:\n');
});

void test('llama-2 tokenizer gives Hugging Face LLaMA-2 ids', () => {
  const t = loadTokenizer('llama-2');
  assert.deepEqual(t.encode('Hello world'), [15043, 3186]);
  assert.deepEqual(t.encode('Hello world', { bos: true, eos: true }), [1, 15043, 3186, 2]);
  assert.equal(t.decode([1, 15043, 3186, 2]), 'Hello world');
  assert.equal(t.vocabSize, 32000);
});

void test('tokenizer.json directory: specials from tokenizer_config.json or the vocabulary; tokenizer.model alone means LLaMA-2', () => {
  const dir = writeTinyTokenizer(tmpDir('data'));
  const t = loadTokenizer(dir);
  assert.equal(t.bosId, 1);
  assert.equal(t.eosId, 2);
  const ids = t.encode('The answer is: 5', { bos: true, eos: true });
  assert.equal(ids[0], 1);
  assert.equal(ids.at(-1), 2);
  assert.equal(t.decode(ids), 'The answer is: 5');
  const noCfg = writeTinyTokenizer(tmpDir('data'), false);
  assert.equal(loadTokenizer(noCfg).eosId, 2);
  const sp = tmpDir('data');
  fs.writeFileSync(path.join(sp, 'tokenizer.model'), 'x');
  assert.deepEqual(loadTokenizer(sp).encode('Hello world'), [15043, 3186]);
  const broken = tmpDir('data');
  fs.writeFileSync(path.join(broken, 'tokenizer.json'), '{"model": ');
  assert.throws(() => loadTokenizer(broken), (e: Error) => e instanceof UserError && e.message.includes(path.join(broken, 'tokenizer.json')));
});

void test('metamath from a JSON array: BOS, prompt labels -100, EOS, 80/20 split, deterministic by seed', async () => {
  const dir = tmpDir('data');
  const tokDir = writeTinyTokenizer(path.join(dir, 'tok'));
  const input = path.join(dir, 'mm.json');
  const rows = rowsOf(50);
  fs.writeFileSync(input, JSON.stringify(rows, null, 1));
  const out = path.join(dir, 'out');
  const rep = await prepare({ dataset: 'metamath', input, out, tokenizer: tokDir, seed: 3 });
  assert.deepEqual(rep.rows, { train: 40, validation: 10 });
  assert.equal(rep.skipped, 0);
  assert.equal(rep.truncated, 0);
  const tok = loadTokenizer(tokDir);
  const train = readAll(path.join(out, 'train.arrow'));
  const val = readAll(path.join(out, 'validation.arrow'));
  const texts = new Set<string>();
  for (const part of [train, val]) {
    part.ids.forEach((ids, i) => {
      const labels = part.labels[i]!;
      assert.equal(ids[0], tok.bosId);
      assert.equal(ids.at(-1), tok.eosId);
      assert.equal(part.lengths[i], ids.length);
      const text = tok.decode(ids);
      const src = rows.find((r) => text === alpacaPrompt(r.query) + r.response);
      assert.ok(src, `decoded row is prompt + response: ${text}`);
      texts.add(text);
      const promptLen = tok.encode(alpacaPrompt(src.query), { bos: true }).length;
      assert.ok(labels.slice(0, promptLen).every((l) => l === IGNORE_INDEX));
      assert.deepEqual(labels.slice(promptLen), ids.slice(promptLen));
      assert.equal(tok.decode(labels.slice(promptLen)), src.response);
    });
  }
  assert.equal(texts.size, 50);
  // Same seed: byte-identical files; another seed: another split.
  const again = path.join(dir, 'again');
  await prepare({ dataset: 'metamath', input, out: again, tokenizer: tokDir, seed: 3 });
  for (const f of ['train.arrow', 'validation.arrow']) assert.ok(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(again, f))));
  const other = path.join(dir, 'other');
  await prepare({ dataset: 'metamath', input, out: other, tokenizer: tokDir, seed: 4 });
  assert.notDeepEqual(readAll(path.join(other, 'validation.arrow')).ids, val.ids);
  const ins = inspect(out);
  assert.deepEqual(ins.rows, { train: 40, validation: 10 });
  assert.equal(ins.lengths!.histogram.reduce((a, h) => a + h.count, 0), 40);
  assert.match(String(ins.example.text), /### Response:\n.*The answer is: \d+$/s);
  // The tokenizer is named relative to the Arrow files, so nothing of this machine is recorded.
  assert.equal(ins.example.tokenizer, '../tok');
});

void test('metamath from JSONL with llama-2, truncation counted', async () => {
  const dir = tmpDir('data');
  const input = path.join(dir, 'mm.jsonl');
  const rows = rowsOf(10);
  rows[3]!.response = 'x '.repeat(300);
  fs.writeFileSync(input, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const out = path.join(dir, 'out');
  const rep = await prepare({ dataset: 'metamath', input, out, tokenizer: 'llama-2', maxLen: 128, valFraction: 0 });
  assert.deepEqual(rep.rows, { train: 10, validation: 0 });
  assert.equal(rep.truncated, 1);
  const train = readAll(path.join(out, 'train.arrow'));
  assert.ok(train.lengths.every((l) => l <= 128));
  assert.equal(train.lengths[3], 128);
  assert.notEqual(train.ids[3]!.at(-1), 2, 'a truncated row loses its EOS');
  assert.equal(train.ids[0]![0], 1);
  assert.equal(train.ids[0]!.at(-1), 2);
});

const BAD_CASES: { name: string; file: string; text: string; where: RegExp; good?: number }[] = [
  { name: 'malformed JSON row in an array', file: 'a.json', text: '[{"query":"a","response":"b"},\n{"query": "c" "response":"d"},{"query":"e","response":"f"}]', where: /row 1: malformed JSON/ },
  { name: 'missing field in an array', file: 'b.json', text: '[{"query":"a","response":"b"},{"query":"c"},{"query":"e","response":"f"}]', where: /row 1: missing field "response"/ },
  { name: 'malformed JSONL line', file: 'c.jsonl', text: '{"query":"a","response":"b"}\n{"query":\n{"query":"e","response":"f"}\n', where: /line 2: malformed JSON/ },
  { name: 'missing field in JSONL', file: 'd.jsonl', text: '{"query":"a","response":"b"}\n{"query":"e","response":"f"}\n{"response":"g"}\n', where: /line 3: missing field "query"/ },
  { name: 'truncated JSON array', file: 'e.json', text: '[{"query":"a","response":"b"},{"query":"e","resp', where: /row 1: the JSON array is not closed/, good: 1 },
];

for (const c of BAD_CASES) {
  void test(`bad input: ${c.name} names file and row; --skip-bad counts it`, async () => {
    const dir = tmpDir('data');
    const input = path.join(dir, c.file);
    fs.writeFileSync(input, c.text);
    const out = path.join(dir, 'out');
    await assert.rejects(prepare({ dataset: 'metamath', input, out, tokenizer: 'llama-2' }),
      (e: Error) => e instanceof UserError && e.message.startsWith(input) && c.where.test(e.message));
    assert.equal(fs.existsSync(out), false, 'nothing written on failure');
    assert.deepEqual(fs.readdirSync(dir), [c.file], 'no temp directory left behind');
    const rep = await prepare({ dataset: 'metamath', input, out, tokenizer: 'llama-2', skipBad: true, valFraction: 0 });
    assert.equal(rep.skipped, 1);
    assert.equal(rep.rows.train, c.good ?? 2);
    assert.match(rep.skipped_examples[0]!, c.where);
  });
}

void test('an existing output directory is replaced whole, a foreign directory is refused', async () => {
  const dir = tmpDir('data');
  const input = path.join(dir, 'mm.json');
  fs.writeFileSync(input, JSON.stringify(rowsOf(5)));
  const out = path.join(dir, 'out');
  await prepare({ dataset: 'metamath', input, out, valFraction: 0 });
  fs.writeFileSync(path.join(out, 'stale.arrow'), 'old');
  await prepare({ dataset: 'metamath', input, out, valFraction: 0 });
  assert.deepEqual(fs.readdirSync(out).sort(), ['train.arrow', 'validation.arrow']);
  const foreign = path.join(dir, 'home');
  fs.mkdirSync(foreign);
  fs.writeFileSync(path.join(foreign, 'notes.txt'), 'mine');
  await assert.rejects(prepare({ dataset: 'metamath', input, out: foreign }), /refusing to replace/);
  assert.deepEqual(fs.readdirSync(foreign), ['notes.txt']);
});

void test('CLI: bad input exits 2 naming file and line; --json report on the last line', () => {
  const dir = tmpDir('data');
  const input = path.join(dir, 'x.jsonl');
  fs.writeFileSync(input, '{"query":"a","response":"b"}\nnot json\n{"query":"c","response":"d"}\n');
  const run = (...args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'bin/onelora.js'), 'data', 'prepare', '--dataset', 'metamath', '--input', input, '--out', path.join(dir, 'o'), ...args], { cwd: ROOT, encoding: 'utf8' });
  const bad = run();
  assert.equal(bad.status, 2, bad.stderr + bad.stdout);
  assert.match(bad.stderr, new RegExp(`${input.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: line 2: malformed JSON`));
  const ok = run('--skip-bad', '--json', '--val-fraction', '0.5');
  assert.equal(ok.status, 0, ok.stderr);
  const rep = JSON.parse(ok.stdout.trim().split('\n').at(-1)!) as { rows: Record<string, number>; skipped: number; truncated: number; rows_per_s: number };
  assert.deepEqual(rep.rows, { train: 1, validation: 1 });
  assert.equal(rep.skipped, 1);
  assert.equal(rep.truncated, 0);
  assert.ok(rep.rows_per_s > 0);
  const usage = run('--val-fraction', 'abc');
  assert.equal(usage.status, 2);
});

// MetaMathQA → causal-LM rows, as MetaMath's train_math.py builds them: the Alpaca prompt, then the
// response and EOS, tokenized as one text; the first len(tokenize(BOS + prompt)) labels are -100
// (the prompt is masked by its own token count, exactly like MetaMath's `source_len`), labels are
// unshifted (the trainer shifts), and rows longer than --max-len are cut to it and counted.
import path from 'node:path';
import { UserError, messageOf } from '../errors.js';
import { readTextFile } from '../json-file.js';
import { Schema } from 'apache-arrow';
import { lmSchema, type LmRow } from './arrow.js';
import { lmMetaEntries } from './lm-meta.js';
import { BadRows, LmSplitWriter, validationMask, type PrepareOptions } from './prepare-common.js';
import { loadTokenizer, tokenizerRef, type Tokenizer } from './tokenizer.js';

export const ALPACA_PREFIX =
  'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n';

export function alpacaPrompt(query: string): string {
  return `${ALPACA_PREFIX}${query}\n\n### Response:\n`;
}

export const IGNORE_INDEX = -100;

export interface JsonRecord {
  /** "row N" (JSON array, from 0) or "line N" (JSONL, from 1). */
  where: string;
  value?: unknown;
  error?: string;
}

/** Splits a JSON array's top-level elements without parsing them, so one bad row can be named and skipped. */
function* arrayElements(text: string, open: number): Generator<{ start: number; end: number } | { unterminated: number }> {
  let depth = 0;
  let inString = false;
  let start = open + 1;
  for (let i = open + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped char
      else if (c === 34) inString = false;
      continue;
    }
    if (c === 34) inString = true;
    else if (c === 123 || c === 91) depth++;
    else if (c === 125 || c === 93) {
      if (depth === 0 && c === 93) {
        yield { start, end: i };
        return;
      }
      depth--;
    } else if (c === 44 && depth === 0) {
      yield { start, end: i };
      start = i + 1;
    }
  }
  yield { unterminated: start };
}

/** The records of a JSON array or JSONL file, each parsed on its own. */
function* readJsonRecords(file: string): Generator<JsonRecord> {
  const text = readTextFile(file);
  const first = text.search(/\S/);
  if (first >= 0 && text[first] === '[') {
    let row = 0;
    for (const el of arrayElements(text, first)) {
      if ('unterminated' in el) {
        const rest = text.slice(el.unterminated).trim();
        yield { where: `row ${row}`, error: `the JSON array is not closed (file truncated?)${rest ? '' : ' after the last row'}` };
        return;
      }
      const src = text.slice(el.start, el.end).trim();
      if (src === '' && row === 0) return; // []
      yield parseOne(src, `row ${row++}`);
    }
    const tail = text.slice(text.lastIndexOf(']') + 1).trim();
    if (tail) yield { where: `row ${row}`, error: 'text after the closing ]' };
    return;
  }
  let line = 0;
  let at = 0;
  while (at < text.length) {
    let nl = text.indexOf('\n', at);
    if (nl < 0) nl = text.length;
    line++;
    const src = text.slice(at, nl).trim();
    at = nl + 1;
    if (src) yield parseOne(src, `line ${line}`);
  }
}

function parseOne(src: string, where: string): JsonRecord {
  if (src === '') return { where, error: 'empty row' };
  try {
    return { where, value: JSON.parse(src) as unknown };
  } catch (err) {
    return { where, error: `malformed JSON: ${messageOf(err)}` };
  }
}

export interface MetaMathRow {
  query: string;
  response: string;
}

/** A problem with a record's fields, or undefined when it is a usable MetaMath row. */
function checkRow(value: unknown): string | MetaMathRow {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return 'not a JSON object';
  const v = value as Record<string, unknown>;
  for (const k of ['query', 'response']) {
    if (!(k in v)) return `missing field "${k}"`;
    if (typeof v[k] !== 'string') return `field "${k}" is not a string`;
  }
  return { query: v.query as string, response: v.response as string };
}

/** One training row; `truncated` when BOS + prompt + response + EOS exceeded `maxLen`. */
function buildLmRow(tok: Tokenizer, row: MetaMathRow, maxLen: number): { row: LmRow; truncated: boolean } {
  const prompt = alpacaPrompt(row.query);
  const promptLen = tok.encode(prompt, { bos: true }).length;
  let ids = tok.encode(prompt + row.response, { bos: true, eos: true });
  const truncated = ids.length > maxLen;
  if (truncated) ids = ids.slice(0, maxLen);
  const inputIds = Int32Array.from(ids);
  const labels = Int32Array.from(ids);
  labels.fill(IGNORE_INDEX, 0, Math.min(promptLen, labels.length));
  return { row: { inputIds, labels }, truncated };
}

export interface LmPrepared {
  rows: Record<string, number>;
  truncated: number;
  tokens: number;
}

export async function prepareMetamath(opts: PrepareOptions, dir: string, bad: BadRows): Promise<LmPrepared> {
  if (!(opts.maxLen >= 2)) throw new UserError(`--max-len must be at least 2, got ${opts.maxLen}`);
  const tok = loadTokenizer(opts.tokenizer);
  const file = opts.input;
  const rows: MetaMathRow[] = [];
  for (const rec of readJsonRecords(file)) {
    if (rec.error !== undefined) {
      bad.bad(file, rec.where, rec.error);
      continue;
    }
    const r = checkRow(rec.value);
    if (typeof r === 'string') bad.bad(file, rec.where, r);
    else rows.push(r);
  }
  if (rows.length === 0) throw new UserError(`${file}: no usable rows`);
  const isVal = validationMask(rows.length, opts.valFraction, opts.seed);
  // Named relative to where the files end up (opts.out), not the staging directory beside it.
  const base = lmSchema(tokenizerRef(tok.spec, opts.out));
  const recorded = lmMetaEntries({ vocabSize: tok.vocabSize, ...(tok.sha256 ? { tokenizerSha256: tok.sha256 } : {}), template: 'alpaca' });
  const schema = new Schema(base.fields, new Map([...base.metadata, ...recorded]));
  const writers = [new LmSplitWriter(path.join(dir, 'train.arrow'), schema), new LmSplitWriter(path.join(dir, 'validation.arrow'), schema)];
  let truncated = 0;
  let tokens = 0;
  try {
    rows.forEach((r, i) => {
      const built = buildLmRow(tok, r, opts.maxLen);
      if (built.truncated) truncated++;
      tokens += built.row.inputIds.length;
      writers[isVal[i]!]!.add(built.row);
    });
    for (const w of writers) await w.close();
  } catch (err) {
    for (const w of writers) w.abort();
    throw err;
  }
  return { rows: { train: writers[0]!.rows, validation: writers[1]!.rows }, truncated, tokens };
}

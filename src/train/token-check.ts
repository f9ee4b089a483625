// Token data against the model, before the first step (docs/data.md#tokenizers): ids past the
// embedding fail deep inside a gather ("GatherV2: the index value 13866 is not in [0, 383]"), and
// ids of another tokenizer that happen to fit train on nonsense. Shared by setupRun (train and the
// workers) and planRun (--dry-run).
import fs from 'node:fs';
import path from 'node:path';
import type { RunConfig } from '../config/index.js';
import type { Dataset } from '../data/arrow-file.js';
import { countSupervised, readLmMeta, scanMaxTokenId } from '../data/lm-meta.js';
import { loadTokenizer, type Tokenizer } from '../data/tokenizer.js';
import { UserError } from '../errors.js';
import { childLog } from '../log.js';

const log = childLog('data');

/** The tokenizer for a causal-LM run: the config's, else the model directory's, else none. */
export function tokenizerFor(cfg: RunConfig): Tokenizer | null {
  if (cfg.model.tokenizer) return loadTokenizer(cfg.model.tokenizer);
  if (cfg.model.path && (fs.existsSync(path.join(cfg.model.path, 'tokenizer.json')) || fs.existsSync(path.join(cfg.model.path, 'tokenizer.model')))) {
    return loadTokenizer(cfg.model.path);
  }
  return null;
}

const n = (v: number): string => v.toLocaleString('en-US');

/**
 * Refuses `ds` (the file at config key `key`) when one of its token ids is not below the model's
 * vocabulary size, or when it records a tokenizer other than the run's (vocabulary size or
 * tokenizer.json hash). A recorded vocabulary smaller than the model's is accepted when no run
 * tokenizer says otherwise: embedding tables padded past the tokenizer are common.
 */
export function checkTokenData(ds: Dataset, key: string, model: { ref: string; vocabSize: number }, tokenizer: Tokenizer | null): void {
  if (ds.info.kind !== 'lm') return;
  const meta = readLmMeta(ds);
  const made = meta.tokenizer === undefined ? 'an unrecorded tokenizer' : `tokenizer ${meta.tokenizer}`;
  const madeWith = `${made}${meta.vocabSize !== undefined ? ` (vocabulary ${n(meta.vocabSize)})` : ''}`;
  const want = tokenizer ? displaySpec(tokenizer.spec) : "<the model's tokenizer directory>";
  const fix = `re-prepare it with the model's tokenizer: onelora data prepare --dataset metamath --input … --out ${path.dirname(ds.file)} --tokenizer ${want}`;
  const where = `${key}: ${ds.file} was prepared with ${madeWith}`;
  if (meta.vocabSize !== undefined && meta.vocabSize > model.vocabSize) {
    throw new UserError(`${where}, but the model ${model.ref} has a vocabulary of ${n(model.vocabSize)} (token ids up to ${n(meta.vocabSize - 1)} do not fit); ${fix}`);
  }
  if (tokenizer && meta.vocabSize !== undefined) {
    const other = meta.vocabSize !== tokenizer.vocabSize ||
      (meta.tokenizerSha256 !== undefined && tokenizer.sha256 !== undefined && meta.tokenizerSha256 !== tokenizer.sha256);
    if (other) {
      throw new UserError(`${where}, but this run tokenizes with ${displaySpec(tokenizer.spec)} (vocabulary ${n(tokenizer.vocabSize)}` +
        `${meta.vocabSize === tokenizer.vocabSize ? ', another tokenizer.json' : ''}); ${fix}`);
    }
  }
  if (meta.vocabSize === undefined) {
    // Prepared before the vocabulary was recorded: the ids themselves are the evidence.
    const max = scanMaxTokenId(ds);
    if (max >= model.vocabSize) {
      throw new UserError(`${where}: its token ids go up to ${n(max)}, but the model ${model.ref} has a vocabulary of ${n(model.vocabSize)}; ${fix}`);
    }
  }
  checkSupervised(ds, key);
}

/** A tokenizer spec as the user would type it: `llama-2`, or a directory relative to the working directory. */
function displaySpec(spec: string): string {
  if (!path.isAbsolute(spec)) return spec;
  const rel = path.relative(process.cwd(), spec);
  return rel === '' ? '.' : rel.startsWith('..') || path.isAbsolute(rel) ? spec : rel;
}

/**
 * Refuses an LM dataset with no label token to train on (every response cut away by
 * `data prepare --max-len`, say): its loss would be 0/0, reported as 0, for the whole run. Rows
 * without any are only counted in the log: the loss normalises over the tokens that remain.
 */
function checkSupervised(ds: Dataset, key: string): void {
  const c = countSupervised(ds);
  if (c.labels === 0) {
    throw new UserError(`${key}: ${ds.file} has no supervised token: all ${n(c.rows)} rows have every label -100 (only prompt); ` +
      'the responses were probably cut by data prepare --max-len: re-prepare with a larger --max-len');
  }
  if (c.rowsWithLabels < c.rows) {
    log.warn({ file: ds.file, rows: c.rows, without_labels: c.rows - c.rowsWithLabels }, `${key}: ${n(c.rows - c.rowsWithLabels)} of ${n(c.rows)} rows have no supervised token (cut by --max-len?)`);
  }
}

// What a token dataset records about the text it was made from (schema metadata beside
// onelora.tokenizer, docs/data.md): the tokenizer's vocabulary size, the sha256 of its
// tokenizer.json and the prompt template. A run checks the first two against the model and its
// tokenizer before its first step (every id is below the recorded vocabulary size); generation
// reads the template back. Datasets prepared before these keys existed get their largest id from
// a scan of the input_ids values.
import type { Schema } from 'apache-arrow';
import type { Dataset } from './arrow-file.js';

const KEYS = {
  vocabSize: 'onelora.vocab_size',
  tokenizerSha256: 'onelora.tokenizer_sha256',
  template: 'onelora.template',
} as const;

export interface LmMeta {
  /** onelora.tokenizer as written in the file (`llama-2`, or a path relative to the file). */
  readonly tokenizer?: string;
  readonly vocabSize?: number;
  /** sha256 of the tokenizer.json the rows were tokenized with (none for the built-in llama-2). */
  readonly tokenizerSha256?: string;
  /** The prompt template the rows were built with (`alpaca`). */
  readonly template?: string;
}

/** The metadata entries to add to an LM schema. */
export function lmMetaEntries(m: Omit<LmMeta, 'tokenizer'>): [string, string][] {
  const out: [string, string][] = [];
  if (m.vocabSize !== undefined) out.push([KEYS.vocabSize, String(m.vocabSize)]);
  if (m.tokenizerSha256 !== undefined) out.push([KEYS.tokenizerSha256, m.tokenizerSha256]);
  if (m.template !== undefined) out.push([KEYS.template, m.template]);
  return out;
}

function intMeta(schema: Schema, key: string): number | undefined {
  const raw = schema.metadata.get(key);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

export function readLmMeta(ds: Dataset): LmMeta {
  const s = ds.schema;
  const tokenizer = ds.info.tokenizer;
  const vocabSize = intMeta(s, KEYS.vocabSize);
  const sha = s.metadata.get(KEYS.tokenizerSha256);
  const template = s.metadata.get(KEYS.template);
  return {
    ...(tokenizer !== undefined ? { tokenizer } : {}),
    ...(vocabSize !== undefined ? { vocabSize } : {}),
    ...(sha !== undefined ? { tokenizerSha256: sha } : {}),
    ...(template !== undefined ? { template } : {}),
  };
}

/** The largest input id of every row (-1 for no tokens): one pass over each batch's flat values column. */
export function scanMaxTokenId(ds: Dataset): number {
  let max = -1;
  for (let b = 0; b < ds.numBatches; b++) {
    const col = ds.batch(b).getChild('input_ids');
    for (const d of col?.data ?? []) {
      const off = d.valueOffsets;
      const vals = d.children[0]!.values as Int32Array;
      // valueOffsets are already shifted by the slice, so the values in use are off[0]..off[length].
      for (let i = off[0]!, end = off[d.length]!; i < end; i++) if (vals[i]! > max) max = vals[i]!;
    }
  }
  return max;
}

/** Rows and label tokens that train (labels ≠ -100, the prompt's ignore index) in an LM dataset. */
export function countSupervised(ds: Dataset): { rows: number; rowsWithLabels: number; labels: number } {
  let rowsWithLabels = 0;
  let labels = 0;
  for (let b = 0; b < ds.numBatches; b++) {
    for (const d of ds.batch(b).getChild('labels')?.data ?? []) {
      const off = d.valueOffsets;
      const vals = d.children[0]!.values as Int32Array;
      for (let r = 0; r < d.length; r++) {
        let inRow = 0;
        for (let i = off[r]!, end = off[r + 1]!; i < end; i++) if (vals[i] !== -100) inRow++;
        labels += inRow;
        if (inRow > 0) rowsWithLabels++;
      }
    }
  }
  return { rows: ds.numRows, rowsWithLabels, labels };
}

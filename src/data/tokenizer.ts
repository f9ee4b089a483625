// Tokenizers behind one interface: the LLaMA-2 SentencePiece vocabulary (llama-tokenizer-js ships
// the real ids: "Hello world" -> [15043, 3186], BOS = 1, EOS = 2, as Hugging Face gives them) and
// any Hugging Face `tokenizer.json` (@huggingface/tokenizers). Special tokens are never added
// implicitly: callers ask for BOS/EOS, so prompt and response tokenization stay under their control.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import llamaTokenizer from 'llama-tokenizer-js';
import { UserError, messageOf } from '../errors.js';
import { readJsonFile } from '../json-file.js';
import { childLog } from '../log.js';

const log = childLog('tokenizer');

export interface EncodeOptions {
  bos?: boolean;
  eos?: boolean;
}

export interface Tokenizer {
  /** What `loadTokenizer` was given (`llama-2` or an absolute directory); datasets store it as a tokenizerRef. */
  readonly spec: string;
  encode(text: string, opts?: EncodeOptions): number[];
  /** Special tokens (BOS, EOS, padding) are left out of the text. */
  decode(ids: ArrayLike<number>): string;
  readonly bosId: number;
  readonly eosId: number;
  /** Id used to pad input_ids; the padded positions always carry label -100. */
  readonly padId: number;
  readonly vocabSize: number;
  /** sha256 of tokenizer.json (none for the built-in LLaMA-2 vocabulary): tells two same-sized vocabularies apart. */
  readonly sha256?: string;
}

function wrap(ids: number[], t: { bosId: number; eosId: number }, opts?: EncodeOptions): number[] {
  if (opts?.bos) ids.unshift(t.bosId);
  if (opts?.eos) ids.push(t.eosId);
  return ids;
}

/** LLaMA-2's 32,000-token vocabulary: <unk> = 0, <s> = 1, </s> = 2. Padding uses <unk> (HF LLaMA-2 has none). */
function llama2(spec: string): Tokenizer {
  const t: Tokenizer = {
    spec,
    bosId: 1,
    eosId: 2,
    padId: 0,
    vocabSize: llamaTokenizer.vocabById.length,
    // add_bos_token=false: BOS is ours to add; add_preceding_space=true is SentencePiece's dummy prefix.
    encode: (text, opts) => wrap(llamaTokenizer.encode(text, false, true), t, opts),
    decode: (ids) => {
      const kept: number[] = [];
      for (let i = 0; i < ids.length; i++) if (ids[i]! > 2) kept.push(ids[i]!);
      return kept.length === 0 ? '' : llamaTokenizer.decode(kept, false, true);
    },
  };
  return t;
}

type TokenSpec = string | { content?: unknown } | null | undefined;

function tokenContent(v: TokenSpec): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof v.content === 'string') return v.content;
  return undefined;
}

const BOS_NAMES = ['<s>', '<bos>', '<|begin_of_text|>', '<|startoftext|>', '<|im_start|>', '[CLS]'];
const EOS_NAMES = ['</s>', '<eos>', '<|end_of_text|>', '<|endoftext|>', '<|eot_id|>', '<|im_end|>', '[SEP]'];
const PAD_NAMES = ['<pad>', '[PAD]', '<|pad|>'];

/** A directory with tokenizer.json (+ optional tokenizer_config.json for the special tokens). */
function hfTokenizer(dir: string): Tokenizer {
  const file = path.join(dir, 'tokenizer.json');
  const json = readJsonFile(file);
  const sha256 = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  if (!json || typeof json !== 'object' || !('model' in json)) throw new UserError(`${file}: not a tokenizer.json (no "model")`);
  const cfgFile = path.join(dir, 'tokenizer_config.json');
  const cfg = (fs.existsSync(cfgFile) ? readJsonFile(cfgFile) : {}) as Record<string, TokenSpec>;
  let hf: HfTokenizer;
  try {
    hf = new HfTokenizer(json, cfg);
  } catch (err) {
    throw new UserError(`${file}: cannot build the tokenizer: ${messageOf(err)}`, { cause: err });
  }
  const find = (key: string, names: string[]): number | undefined => {
    const fromCfg = tokenContent(cfg[key]);
    if (fromCfg !== undefined) {
      const id = hf.token_to_id(fromCfg);
      if (id === undefined) throw new UserError(`${cfgFile}: ${key} "${fromCfg}" is not in ${file}`);
      return id;
    }
    for (const n of names) {
      const id = hf.token_to_id(n);
      if (id !== undefined) return id;
    }
    return undefined;
  };
  const eosId = find('eos_token', EOS_NAMES);
  if (eosId === undefined) throw new UserError(`${file}: no EOS token found (set eos_token in ${cfgFile})`);
  // GPT-2-style vocabularies have one <|endoftext|> that serves as both BOS and EOS.
  const bosId = find('bos_token', BOS_NAMES) ?? eosId;
  const padId = find('pad_token', PAD_NAMES) ?? find('unk_token', ['<unk>', '[UNK]']) ?? eosId;
  const special = new Set([bosId, eosId, padId]);
  const t: Tokenizer = {
    spec: path.resolve(dir),
    bosId,
    eosId,
    padId,
    vocabSize: hf.get_vocab(true).size,
    sha256,
    encode: (text, opts) => wrap(hf.encode(text, { add_special_tokens: false }).ids, t, opts),
    decode: (ids) => {
      const kept: number[] = [];
      for (let i = 0; i < ids.length; i++) if (!special.has(ids[i]!)) kept.push(ids[i]!);
      // tokenizers.js refuses an empty list; nothing decodes to nothing.
      return kept.length === 0 ? '' : hf.decode(kept, { skip_special_tokens: true });
    },
  };
  return t;
}

/** `llama-2`, or a directory holding tokenizer.json or only tokenizer.model (then LLaMA-2's vocabulary is assumed). */
export function loadTokenizer(spec: string): Tokenizer {
  if (spec === 'llama-2' || spec === 'llama2') return llama2('llama-2');
  let st: fs.Stats;
  try {
    st = fs.statSync(spec);
  } catch {
    throw new UserError(`tokenizer ${spec}: neither "llama-2" nor an existing directory`);
  }
  const dir = st.isDirectory() ? spec : path.dirname(spec);
  if (fs.existsSync(path.join(dir, 'tokenizer.json'))) return hfTokenizer(dir);
  if (fs.existsSync(path.join(dir, 'tokenizer.model'))) {
    log.info({ dir }, 'only tokenizer.model found: assuming the LLaMA-2 SentencePiece vocabulary');
    return llama2(path.resolve(dir));
  }
  throw new UserError(`tokenizer ${spec}: no tokenizer.json or tokenizer.model in ${dir}`);
}

/**
 * How a prepared Arrow file names its tokenizer (schema metadata onelora.tokenizer): `llama-2` as
 * is; a directory relative to the file's own directory, always starting with ./ or ../ so it cannot
 * be read as a built-in name. Relative, so data prepared in one checkout (data/demo/) names the same
 * tokenizer in every clone and records nothing of the machine it was made on.
 */
export function tokenizerRef(spec: string, arrowDir: string): string {
  if (!path.isAbsolute(spec)) return spec;
  const rel = path.relative(path.resolve(arrowDir), spec);
  // Another drive (Windows): no relative path exists, so the absolute one is kept.
  if (path.isAbsolute(rel)) return spec;
  const posix = rel.split(path.sep).join('/');
  return posix.startsWith('../') || posix === '..' ? posix : `./${posix}`;
}

/** The loadTokenizer spec for a reference read from an Arrow file in `arrowDir`. */
export function resolveTokenizerRef(ref: string, arrowDir: string): string {
  return ref.startsWith('./') || ref.startsWith('../') ? path.resolve(arrowDir, ref) : ref;
}

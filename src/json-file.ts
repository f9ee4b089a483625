// Reading the files a user names (configs, model and tokenizer JSON, run outputs): every failure
// is a UserError that names the file, so the CLI exits 2 with a message the user can act on.
import fs from 'node:fs';
import { messageOf, UserError } from './errors.js';

/** How the file is named in errors: the path, or e.g. `--config FILE` when a flag gave it. */
export interface FileLabel {
  readonly label?: string;
}

/** A file's text; a UserError naming it (and the errno code) when it cannot be read. */
export function readTextFile(file: string, opts: FileLabel = {}): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`${opts.label ?? file}: cannot read (${(err as NodeJS.ErrnoException).code ?? messageOf(err)})`, { cause: err });
  }
}

/** A JSON file's value; a UserError naming the file when it cannot be read or parsed. */
export function readJsonFile(file: string, opts: FileLabel = {}): unknown {
  const text = readTextFile(file, opts);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new UserError(`${opts.label ?? file}: not valid JSON (${messageOf(err)})`, { cause: err });
  }
}

/** A JSON file that must hold an object (config.json, tokenizer_config.json, …). */
export function readJsonObject(file: string, opts: FileLabel = {}): Record<string, unknown> {
  const v = readJsonFile(file, opts);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UserError(`${opts.label ?? file}: expected a JSON object`);
  return v as Record<string, unknown>;
}

/**
 * A JSONL file (metrics.jsonl): one value per non-empty line; a bad line is named by its number.
 * `partialLastLine`: a last line without its newline is left out (a file another process is
 * writing, or one a killed process left torn) instead of being an error.
 */
export function readJsonLines(file: string, opts: FileLabel & { partialLastLine?: boolean } = {}): unknown[] {
  const out: unknown[] = [];
  const text = readTextFile(file, opts);
  (opts.partialLastLine ? text.slice(0, text.lastIndexOf('\n') + 1) : text).split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push(JSON.parse(line) as unknown);
    } catch (err) {
      throw new UserError(`${opts.label ?? file}:${i + 1}: not valid JSON (${messageOf(err)})`, { cause: err });
    }
  });
  return out;
}

// Prompt templates (docs/models.md#prompt-templates): the text a prompt is wrapped in before it is
// tokenized. `prepare` records the one it built the rows with (onelora.template), training copies
// it into the adapter's config, and `generate` wraps a prompt the same way by default, so the
// model sees the format it was trained on.
import fs from 'node:fs';
import { UserError } from '../errors.js';
import { alpacaPrompt } from './metamath.js';

export interface PromptTemplate {
  /** `alpaca`, `none`, or the file it was read from. */
  readonly name: string;
  apply(prompt: string): string;
}

const BUILT_IN: Record<string, (p: string) => string> = {
  // MetaMath's train_math.py PROMPT_DICT["prompt_no_input"], as the metamath rows are built.
  alpaca: alpacaPrompt,
  none: (p) => p,
};

const PLACEHOLDER = /\{(prompt|instruction)\}/g;

/**
 * `alpaca`, `none`, or a text file used verbatim with every `{prompt}` (or `{instruction}`, the
 * Alpaca field's name) replaced by the prompt; a file without one is refused.
 */
export function promptTemplate(spec: string, flag = '--template'): PromptTemplate {
  const builtIn = BUILT_IN[spec];
  if (builtIn) return { name: spec, apply: builtIn };
  if (!fs.existsSync(spec) || !fs.statSync(spec).isFile()) {
    throw new UserError(`${flag} ${spec}: neither ${Object.keys(BUILT_IN).join(' nor ')} nor a template file`);
  }
  const text = fs.readFileSync(spec, 'utf8');
  if (!text.match(PLACEHOLDER)) throw new UserError(`${flag} ${spec}: the file has no {prompt} or {instruction} placeholder`);
  // A function replacer, so `$&` and the like in a prompt stay literal.
  return { name: spec, apply: (p) => text.replace(PLACEHOLDER, () => p) };
}

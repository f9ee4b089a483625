// `onelora generate` (docs/architecture.md#cli-conventions): continues a prompt with a LLaMA model and its KV cache.
// --json prints {"ids": [new ids], "text": decoded text or null without tokenizer files}, and with
// --prompt the "template" it was wrapped in.
// --prompt is wrapped in the prompt template the adapter was trained with (adapter_config.json's
// onelora_prompt_template, from its data) unless --template says otherwise (docs/models.md#prompt-templates).
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { initBackend } from '../../backend/select.js';
import { promptTemplate } from '../../data/template.js';
import { loadTokenizer, type Tokenizer } from '../../data/tokenizer.js';
import { stopIds } from '../../models/generate.js';
import { adapterPromptTemplate } from '../../peft/adapter-io.js';
import { UserError } from '../../errors.js';
import { backendOption, parseIntFlag, parseNumFlag } from '../flags.js';
import { action, printResult } from '../run.js';
import { loadWithAdapter } from './model-common.js';

interface GenerateFlags {
  model?: string;
  adapter?: string;
  prompt?: string;
  promptIds?: string;
  maxNewTokens?: string;
  greedy?: boolean;
  temperature?: string;
  topP?: string;
  seed?: string;
  tokenizer?: string;
  template?: string;
  backend?: string;
  json?: boolean;
}

function parseIds(text: string, vocab: number): number[] {
  const ids = text.split(',').map((s) => s.trim());
  return ids.map((s) => {
    const n = Number(s);
    if (s === '' || !Number.isInteger(n) || n < 0 || n >= vocab) throw new UserError(`--prompt-ids: '${s}' is not a token id below the vocabulary size ${vocab}`);
    return n;
  });
}

function hasTokenizerFiles(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'tokenizer.json')) || fs.existsSync(path.join(dir, 'tokenizer.model'));
}

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('continue a prompt with a LLaMA model (KV cache; greedy or seeded sampling); stops at EOS or after N tokens')
    .option('--model <dir>', 'Hugging Face model directory (or a preset, random weights)')
    .option('--adapter <dir>', 'adapter directory applied on top')
    .option('--prompt <text>', 'prompt text (needs tokenizer files in the model directory, or --tokenizer)')
    .option('--prompt-ids <ids>', 'prompt token ids, comma-separated (BOS included if wanted)')
    .option('--max-new-tokens <n>', 'tokens to generate at most')
    .option('--greedy', 'argmax at every step')
    .option('--temperature <t>', 'sampling temperature (default 1)')
    .option('--top-p <p>', 'nucleus sampling threshold in (0, 1] (default 1)')
    .option('--seed <s>', 'sampling seed (default 0)')
    .option('--tokenizer <spec>', 'llama-2 or a directory (default: the model directory)')
    .option('--template <t>', "wrap --prompt in alpaca | none | FILE (text with a {prompt} placeholder); default: the adapter's training template, else none")
    .addOption(backendOption())
    .option('--json', 'one JSON object on the last line')
    .action(action(async (f: GenerateFlags) => {
      if ((f.prompt === undefined) === (f.promptIds === undefined)) throw new UserError('give exactly one of --prompt and --prompt-ids');
      if (f.maxNewTokens === undefined) throw new UserError('--max-new-tokens is required');
      const maxNewTokens = parseIntFlag('--max-new-tokens', f.maxNewTokens, 0, 1);
      const temperature = parseNumFlag('--temperature', f.temperature, 1, (n) => n >= 0, 'a number ≥ 0');
      const topP = parseNumFlag('--top-p', f.topP, 1, (n) => n > 0 && n <= 1, 'a number in (0, 1]');
      const seed = parseIntFlag('--seed', f.seed, 0);
      if (f.template !== undefined && f.prompt === undefined) throw new UserError('--template wraps --prompt text; --prompt-ids are used as given');
      const recorded = f.adapter !== undefined ? adapterPromptTemplate(f.adapter) : null;
      const template = promptTemplate(f.template ?? recorded ?? 'none', f.template !== undefined ? '--template' : `${f.adapter}: onelora_prompt_template`);
      await initBackend(f.backend);
      const { loaded, peft } = await loadWithAdapter(f.model, f.adapter);
      try {
        if (loaded.family !== 'llama') throw new UserError(`--model ${f.model}: a ${loaded.family} model cannot generate text (needs a causal LM)`);
        const model = loaded.model;
        const tokSpec = f.tokenizer ?? (loaded.dir && hasTokenizerFiles(loaded.dir) ? loaded.dir : undefined);
        let tokenizer: Tokenizer | null = null;
        if (tokSpec !== undefined) tokenizer = loadTokenizer(tokSpec);
        else if (f.prompt !== undefined) throw new UserError(`--prompt needs a tokenizer: ${f.model} has no tokenizer.json or tokenizer.model (use --tokenizer or --prompt-ids)`);
        const prompt = f.prompt !== undefined ? tokenizer!.encode(template.apply(f.prompt), { bos: true }) : parseIds(f.promptIds!, model.config.vocabSize);
        const fromModel = stopIds(model.config);
        const eosId = fromModel.length > 0 ? fromModel : tokenizer?.eosId ?? null;
        const ids = await model.generate(prompt, { maxNewTokens, greedy: f.greedy ?? false, temperature, topP, seed, eosId });
        const text = tokenizer ? tokenizer.decode(ids) : null;
        printResult(!!f.json, f.prompt !== undefined ? { ids, text, template: template.name } : { ids, text }, text ?? ids.join(','));
      } finally {
        peft?.dispose();
        loaded.model.dispose();
      }
    }));
}

// `onelora merge` (docs/architecture.md#cli-conventions): folds an adapter into the base weights (W0 + ΔW) and writes a
// complete Hugging Face directory in float32 — config.json, model.safetensors and the tokenizer /
// preprocessor files copied from --model — loadable by transformers and by onelora.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { initBackend } from '../../backend/select.js';
import { UserError } from '../../errors.js';
import { saveDit } from '../../models/dit-load.js';
import { AUX_FILES, saveHfModel } from '../../models/hf.js';
import { mergeAndUnload } from '../../peft/merge.js';
import { backendOption } from '../flags.js';
import { action, printResult } from '../run.js';
import { loadWithAdapter, requireDir } from './model-common.js';

interface MergeFlags {
  model?: string;
  adapter?: string;
  out?: string;
  backend?: string;
  json?: boolean;
}

export function registerMerge(program: Command): void {
  program
    .command('merge')
    .description('fold an adapter into the base model and write a complete Hugging Face directory (float32)')
    .option('--model <dir>', 'base model directory')
    .option('--adapter <dir>', 'adapter directory')
    .option('--out <dir>', 'output directory (created)')
    .addOption(backendOption())
    .option('--json', 'one JSON object on the last line')
    .action(action(async (f: MergeFlags) => {
      requireDir('--adapter', f.adapter);
      if (!f.out) throw new UserError('--out is required');
      if (f.model && fs.existsSync(f.model) && path.resolve(f.out) === path.resolve(f.model)) throw new UserError('--out: must not be the --model directory');
      await initBackend(f.backend);
      const { loaded, peft } = await loadWithAdapter(f.model, f.adapter);
      try {
        const { addedBiases } = mergeAndUnload(peft!);
        if (loaded.family === 'dit') saveDit(loaded.model, f.out);
        else saveHfModel(loaded.model, f.out, { dtype: 'F32' });
        const copied: string[] = [];
        for (const name of AUX_FILES) {
          const src = loaded.dir ? path.join(loaded.dir, name) : null;
          if (src && fs.existsSync(src)) {
            fs.copyFileSync(src, path.join(f.out, name));
            copied.push(name);
          }
        }
        printResult(!!f.json, { out: f.out, method: peft!.spec.text, merged: peft!.targets.length, addedBiases, copied }, `merged ${peft!.spec.text} into ${f.out}`);
      } finally {
        peft?.dispose();
        loaded.model.dispose();
      }
    }));
}

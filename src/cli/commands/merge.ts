// `onelora merge` (docs/architecture.md#cli-conventions): folds an adapter into the base weights (W0 + ΔW) and writes a
// complete Hugging Face directory — config.json, model.safetensors (or shards with
// model.safetensors.index.json above --max-shard-size, as save_pretrained writes them) and the
// tokenizer / preprocessor / generation files copied from --model — loadable by transformers and
// by onelora, in the base's dtype unless --dtype says otherwise.
// `--adapter-only` writes the adapter itself instead (a DiT's in diffusers' names with --layout diffusers).
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { initBackend } from '../../backend/select.js';
import { DEFAULT_MAX_SHARD_SIZE, parseShardSize } from '../../checkpoint/safetensors.js';
import { UserError } from '../../errors.js';
import { saveDepth } from '../../models/depth-anything-load.js';
import { ditLayout, saveDit } from '../../models/dit-load.js';
import { saveDitDiffusers } from '../../models/dit-diffusers.js';
import { AUX_FILES, checkpointDtype, saveHfModel, type SaveDtype } from '../../models/hf.js';
import { ditAdapterToDiffusers, diffusersTargetModules, type AdapterTensor } from '../../models/dit-adapter.js';
import { adapterTensors, writeAdapterDir } from '../../peft/adapter-io.js';
import type { PeftState } from '../../peft/apply.js';
import { mergeAndUnload } from '../../peft/merge.js';
import { backendOption } from '../flags.js';
import { action, printResult } from '../run.js';
import { loadWithAdapter, requireDir } from './model-common.js';

interface MergeFlags {
  model?: string;
  adapter?: string;
  out?: string;
  dtype?: string;
  maxShardSize: string;
  overwrite?: boolean;
  layout?: string;
  adapterOnly?: boolean;
  backend?: string;
  json?: boolean;
}

const DTYPES: Readonly<Record<string, SaveDtype>> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

/** --out must be new or empty: a merge into a directory that holds something would mix with it (issue 18 item 11). */
function checkOut(out: string, overwrite: boolean): void {
  if (!fs.existsSync(out)) return;
  if (!fs.statSync(out).isDirectory()) throw new UserError(`--out ${out}: exists and is not a directory`);
  const entries = fs.readdirSync(out);
  if (entries.length > 0 && !overwrite) {
    throw new UserError(`--out ${out}: the directory exists and is not empty (${entries.length} entries, e.g. ${entries.sort()[0]}); give a new --out, or --overwrite to replace the model files in it`);
  }
}

/** `--adapter-only`: the adapter as it is, in diffusers' DiT names when asked (docs/dit.md#adapters-in-diffusers-names). */
async function exportAdapter(peft: PeftState, depth: number, out: string, diffusers: boolean, baseModel: string): Promise<{ layout: string } & Record<string, unknown>> {
  const tensors = await adapterTensors(peft);
  const targetModules = diffusers ? diffusersTargetModules(peft.targets, depth) : undefined;
  const written = diffusers ? ditAdapterToDiffusers(tensors as Record<string, AdapterTensor>, depth) : tensors;
  writeAdapterDir(out, peft, written, { baseModel, taskType: 'diffusion', targetModules });
  return { out, method: peft.spec.text, layout: diffusers ? 'diffusers' : 'original', tensors: Object.keys(written).length };
}

export function registerMerge(program: Command): void {
  program
    .command('merge')
    .description('fold an adapter into the base model and write a complete Hugging Face directory')
    .option('--model <dir>', 'base model directory')
    .option('--adapter <dir>', 'adapter directory')
    .option('--out <dir>', 'output directory (created; must be new or empty)')
    .option('--dtype <dtype>', 'f32 | f16 | bf16 (default: the base model\'s, from its config torch_dtype or its files)')
    .option('--max-shard-size <size>', 'shard the weights above this size, as transformers does (e.g. 5GB, 200MB)', DEFAULT_MAX_SHARD_SIZE)
    .option('--overwrite', 'write into a non-empty --out, replacing the model files there')
    .option('--layout <name>', 'DiT: original (facebookresearch names) | diffusers (transformer/ as DiTTransformer2DModel); default: the layout --model has')
    .option('--adapter-only', 'write the adapter itself (not merged) to --out, in --layout\'s names: a DiT adapter for diffusers\' DiTTransformer2DModel with --layout diffusers')
    .addOption(backendOption())
    .option('--json', 'one JSON object on the last line')
    .action(action(async (f: MergeFlags) => {
      requireDir('--adapter', f.adapter);
      if (!f.out) throw new UserError('--out is required');
      if (f.model && fs.existsSync(f.model) && path.resolve(f.out) === path.resolve(f.model)) throw new UserError('--out: must not be the --model directory');
      if (f.dtype !== undefined && !(f.dtype in DTYPES)) throw new UserError(`--dtype: '${f.dtype}' is not one of ${Object.keys(DTYPES).join(', ')}`);
      if (f.layout !== undefined && f.layout !== 'original' && f.layout !== 'diffusers') throw new UserError(`--layout: expected original or diffusers, got '${f.layout}'`);
      const maxShardBytes = parseShardSize(f.maxShardSize, '--max-shard-size');
      checkOut(f.out, f.overwrite ?? false);
      await initBackend(f.backend);
      const { loaded, peft } = await loadWithAdapter(f.model, f.adapter);
      try {
        if (f.adapterOnly) {
          if (loaded.family !== 'dit') throw new UserError(`--adapter-only: only a DiT adapter has another layout to be written in (this is ${loaded.family})`);
          const layout = f.layout ?? (loaded.dir && ditLayout(loaded.dir) === 'diffusers' ? 'diffusers' : 'original');
          const result = await exportAdapter(peft!, loaded.model.config.depth, f.out, layout === 'diffusers', f.model!);
          printResult(!!f.json, result, `wrote the ${peft!.spec.text} adapter to ${f.out} (${result.layout} names)`);
          return;
        }
        const dtype = f.dtype !== undefined ? DTYPES[f.dtype]! : loaded.dir ? checkpointDtype(loaded.dir) : 'F32';
        const { addedBiases } = mergeAndUnload(peft!);
        if (f.layout !== undefined && loaded.family !== 'dit') throw new UserError(`--layout: only DiT models have a choice of layout (this is ${loaded.family})`);
        const layout = f.layout ?? (loaded.family === 'dit' && loaded.dir && ditLayout(loaded.dir) === 'diffusers' ? 'diffusers' : 'original');
        if (loaded.family === 'dit' && layout === 'diffusers') await saveDitDiffusers(loaded.model, f.out, { dtype, maxShardBytes });
        else if (loaded.family === 'dit') await saveDit(loaded.model, f.out, { dtype, maxShardBytes });
        else if (loaded.family === 'depth') await saveDepth(loaded.model, f.out, { dtype, maxShardBytes });
        else await saveHfModel(loaded.model, f.out, { dtype, maxShardBytes });
        const copied: string[] = [];
        for (const name of AUX_FILES) {
          const src = loaded.dir ? path.join(loaded.dir, name) : null;
          if (src && fs.existsSync(src)) {
            fs.copyFileSync(src, path.join(f.out, name));
            copied.push(name);
          }
        }
        const result = { out: f.out, method: peft!.spec.text, merged: peft!.targets.length, dtype, addedBiases, copied, ...(loaded.family === 'dit' ? { layout, num_classes: loaded.model.config.numClasses } : {}) };
        printResult(!!f.json, result, `merged ${peft!.spec.text} into ${f.out} (${dtype})`);
      } finally {
        peft?.dispose();
        loaded.model.dispose();
      }
    }));
}

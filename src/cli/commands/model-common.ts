// What generate, merge and predict share: loading --model (a directory or a preset) and
// --adapter with errors that name the flag.
import fs from 'node:fs';
import path from 'node:path';
import { openSafetensors } from '../../checkpoint/safetensors.js';
import { UserError } from '../../errors.js';
import { ditAdapterTranslation } from '../../models/dit-adapter.js';
import { adapterDitClasses } from '../../models/dit-load.js';
import { loadModel, type LoadedModel } from '../../models/registry.js';
import { adapterLabels, loadAdapter } from '../../peft/adapter-io.js';
import type { PeftState } from '../../peft/apply.js';

export function requireDir(flag: string, dir: string | undefined): string {
  if (!dir) throw new UserError(`${flag} is required`);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`${flag} ${dir}: not a directory`);
  return dir;
}

/** A task head saved with the adapter (modules_to_save: a classifier, DiT's class table) fixes the number of classes. */
function adapterNumLabels(adapterDir: string): number | undefined {
  const file = path.join(adapterDir, 'adapter_model.safetensors');
  if (!fs.existsSync(file)) return undefined;
  const src = openSafetensors(file);
  try {
    const classifier = src.tensors.get('base_model.model.classifier.weight')?.shape[0];
    if (classifier !== undefined) return classifier;
  } finally {
    src.close();
  }
  return adapterDitClasses(adapterDir);
}

/** --model (directory or preset) and optionally --adapter applied on top of it. */
export async function loadWithAdapter(modelRef: string | undefined, adapterDir: string | undefined): Promise<{ loaded: LoadedModel; peft: PeftState | null }> {
  if (!modelRef) throw new UserError('--model is required');
  if (adapterDir !== undefined) requireDir('--adapter', adapterDir);
  const numLabels = adapterDir ? adapterNumLabels(adapterDir) : undefined;
  let labels: string[] | undefined;
  try {
    labels = adapterDir ? adapterLabels(adapterDir) : undefined;
  } catch (err) {
    if (err instanceof UserError) throw new UserError(`--adapter: ${err.message}`, { cause: err });
    throw err;
  }
  let loaded: LoadedModel;
  try {
    loaded = await loadModel(modelRef, { numLabels, labels });
  } catch (err) {
    if (err instanceof UserError) throw new UserError(`--model: ${err.message}`, { cause: err });
    throw err;
  }
  if (!adapterDir) return { loaded, peft: null };
  try {
    // A DiT adapter may be in diffusers' module names (merge --adapter-only --layout diffusers writes them).
    const translate = loaded.family === 'dit' ? ditAdapterTranslation(loaded.model.config.depth) : undefined;
    return { loaded, peft: loadAdapter(adapterDir, loaded.model, translate) };
  } catch (err) {
    loaded.model.dispose();
    if (err instanceof UserError) throw new UserError(`--adapter: ${err.message}`, { cause: err });
    throw err;
  }
}

// `onelora params --model PRESET|DIR --method SPEC [--rank R] [--targets T] [--json]`
// (docs/architecture.md#cli-conventions): trainable parameters of a method on a model, counted from the config alone (no weights
// are allocated, so 7B and 13B answer instantly). A newly created task head is reported as
// `head`, not in `trainable`.
import type { Command } from 'commander';
import { describeModel } from '../../models/registry.js';
import { countTrainable, type CountResult } from '../../peft/count.js';
import type { MethodSpec } from '../../peft/spec.js';
import { methodWithRank } from '../../train/method.js';
import { intFlag } from '../flags.js';
import { action, printResult } from '../run.js';

interface ParamsFlags {
  model: string;
  method: string;
  rank?: number;
  targets?: string;
  exclude?: string;
  numLabels?: number;
  json?: boolean;
}

/** `--rank R` sets r on every rank-based term that does not set its own. */
export function withRank(spec: string, rank: number | undefined): MethodSpec {
  return methodWithRank(spec, rank);
}

function human(r: CountResult, model: string, total: number): string {
  const pct = total > 0 ? ` (${((100 * r.trainable) / total).toFixed(4)}% of ${total.toLocaleString('en-US')})` : '';
  return [
    `model      ${model}`,
    `method     ${r.method}`,
    `targets    ${r.targets.join(', ') || '-'} (${r.layers} linear layers)`,
    `trainable  ${r.trainable.toLocaleString('en-US')}${pct}`,
    `bytes_fp32 ${r.bytes_fp32.toLocaleString('en-US')}`,
    `head       ${r.head.toLocaleString('en-US')}`,
  ].join('\n');
}

export function registerParams(program: Command): void {
  program
    .command('params')
    .description('count the trainable parameters of a method on a model, from its config alone')
    .requiredOption('--model <preset|dir>', 'a preset name or a Hugging Face model directory')
    .requiredOption('--method <spec>', 'method SPEC, e.g. 1lora, lora:r=1, 1lora+norms')
    .option('--rank <r>', 'rank for rank-based methods that do not set r', intFlag(1))
    .option('--targets <t>', 'all-linear | qkv | q_proj,v_proj | a regex over module paths')
    .option('--exclude <t>', 'modules to leave out (same grammar as --targets)')
    .option('--num-labels <n>', 'classes of a classification task (sizes the new ViT head)', intFlag(1))
    .option('--json', 'one JSON object on the last line')
    .action(action(async (f: ParamsFlags) => {
      const spec = withRank(f.method, f.rank);
      const desc = await describeModel(f.model, f.numLabels !== undefined ? { numLabels: f.numLabels } : {});
      const r = countTrainable(desc, spec, { targets: f.targets, exclude: f.exclude });
      printResult(!!f.json, { ...r, model: desc.name, family: desc.family, total_params: desc.totalParams }, human(r, desc.name, desc.totalParams));
    }));
}

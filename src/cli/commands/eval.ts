// `onelora eval fid --real F --fake F [--json]`: the Fréchet distance between two pre-computed
// feature sets (Inception pool3 features for FID proper), from safetensors (`features` [N, D]) or
// Arrow (column `features`). Computing Inception features in tfjs is not part of onelora yet (docs/dit.md).
import type { Command } from 'commander';
import { fidFromFiles } from '../../eval/fid.js';
import { registerEvalDepth } from './depth.js';
import { action, printResult } from '../run.js';

export function registerEval(program: Command): void {
  const ev = program.command('eval').description('evaluation metrics computed from files');
  ev.command('fid')
    .description('Fréchet distance between two feature files (.safetensors with `features` [N, D], or .arrow)')
    .requiredOption('--real <file>', 'features of the reference images')
    .requiredOption('--fake <file>', 'features of the generated images')
    .option('--json', 'one JSON object on the last line')
    .action(action((opts: { real: string; fake: string; json?: boolean }) => {
      const r = fidFromFiles(opts.real, opts.fake);
      printResult(!!opts.json, r, `FID ${r.fid.toFixed(4)} (${r.n_real} real, ${r.n_fake} fake, ${r.dim} features)`);
    }));
  registerEvalDepth(ev);
}

// `onelora plot RUN_DIR… --out curves.png|svg [--metric M]`: the loss and evaluation curves of one
// or several runs in one chart, for reports and for terminals without a browser (src/watch/plot.ts).
import type { Command } from 'commander';
import { writeCurves } from '../../watch/plot.js';
import { action, printResult } from '../run.js';

export function registerPlot(program: Command): void {
  program
    .command('plot')
    .description('draw the training loss and evaluation curves of one or several runs (one line per run) as PNG or SVG')
    .argument('<run_dir...>', 'run output directories (each with its metrics.jsonl)')
    .requiredOption('--out <file>', 'the chart to write: FILE.png or FILE.svg')
    .option('--metric <name>', 'one curve only: loss, lr, grad_norm, tokens_per_s, samples_per_s, peak_bytes, or eval.NAME (eval.loss, eval.accuracy, …)')
    .option('--json', 'one JSON object on the last line')
    .action(action(async (dirs: string[], o: { out: string; metric?: string; json?: boolean }) => {
      const file = await writeCurves(dirs, o.out, o.metric);
      printResult(!!o.json, { file, runs: dirs }, `wrote ${file}`);
    }));
}

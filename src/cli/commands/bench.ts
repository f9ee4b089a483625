// `onelora bench kernels|step|methods|allreduce` (DESIGN.md §5): benchmarks print figures; they
// are never timed assertions.
import type { Command } from 'commander';
import { initBackend } from '../../backend.js';
import { benchKernels } from '../../bench/kernels.js';
import { action, intFlag, printResult } from '../run.js';

export function registerBench(program: Command): void {
  const bench = program.command('bench').description('benchmarks that print their figures (never timed tests)');
  bench
    .command('kernels')
    .description('GFLOP/s of the plain matmul, the project\'s linear forward+backward, and attention matmuls')
    .option('--backend <name>', 'auto|tensorflow-gpu|tensorflow|wasm|cpu')
    .option('--reps <n>', 'timed repetitions (median reported)', intFlag('--reps', 1), 7)
    .option('--json', 'one JSON object on the last line')
    .action(action(async (opts: { backend?: string; reps: number; json?: boolean }) => {
      await initBackend(opts.backend);
      const r = benchKernels({ reps: opts.reps });
      printResult(!!opts.json, r);
    }));
}

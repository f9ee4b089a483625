// `onelora bench kernels|step|methods|allreduce` (DESIGN.md §5): benchmarks print figures; they
// are never timed assertions.
import type { Command } from 'commander';
import { initBackend } from '../../backend.js';
import { benchKernels } from '../../bench/kernels.js';
import { ablationGrid, benchMethods, BENCH_TASKS, DEFAULT_METHODS, type BenchTask } from '../../bench/methods.js';
import { benchPca } from '../../bench/pca.js';
import { writePcaPlot, writeReport } from '../../bench/report.js';
import { benchStep, DEFAULT_STEP_SHAPE } from '../../bench/step.js';
import { UserError } from '../../errors.js';
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
  const d = DEFAULT_STEP_SHAPE;
  bench
    .command('step')
    .description('one training step (forward, backward, AdamW) of a LLaMA-shaped model with random weights: step_s, tokens_per_s, peak_bytes, trainable')
    .option('--vocab <n>', 'vocabulary size', intFlag('--vocab', 2), d.vocab)
    .option('--dim <n>', 'hidden size', intFlag('--dim', 2), d.dim)
    .option('--layers <n>', 'decoder layers', intFlag('--layers', 1), d.layers)
    .option('--heads <n>', 'attention heads', intFlag('--heads', 1), d.heads)
    .option('--ffn <n>', 'SwiGLU width', intFlag('--ffn', 1), d.ffn)
    .option('--seq <n>', 'tokens per sequence', intFlag('--seq', 2), d.seq)
    .option('--batch <n>', 'sequences per step', intFlag('--batch', 1), d.batch)
    .option('--method <spec>', 'method SPEC', '1lora')
    .option('--backend <name>', 'auto|tensorflow-gpu|tensorflow|wasm|cpu')
    .option('--reps <n>', 'timed steps after one warm-up step (median reported)', intFlag('--reps', 1), 5)
    .option('--profile', 'add the milliseconds per kernel of one step')
    .option('--json', 'one JSON object on the last line')
    .action(action(async (o: { vocab: number; dim: number; layers: number; heads: number; ffn: number; seq: number; batch: number; method: string; backend?: string; reps: number; profile?: boolean; json?: boolean }) => {
      await initBackend(o.backend);
      const shape = { vocab: o.vocab, dim: o.dim, layers: o.layers, heads: o.heads, ffn: o.ffn, seq: o.seq, batch: o.batch };
      printResult(!!o.json, await benchStep({ method: o.method, shape, reps: o.reps, profile: !!o.profile }));
    }));
  bench
    .command('methods')
    .description("the paper's four axes per method (time to best validation metric, the metric, peak memory, trainable parameters) on a small pre-trained base; --report writes report.md and the bubble plot (SVG, PNG)")
    .requiredOption('--task <name>', Object.keys(BENCH_TASKS).join('|'))
    .option('--methods <list>', 'comma list of method SPECs (1lora-random for the compression ablation)', DEFAULT_METHODS.join(','))
    .option('--grid', "the paper's ablation grid: every combination of 1lora, bitfit (β), difffit-gamma (γ), norms")
    .option('--steps <n>', 'optimizer steps per method (default: the task\'s)', intFlag('--steps', 1))
    .option('--report <dir>', 'write report.md, bubbles.svg, bubbles.png and results.json here')
    .option('--backend <name>', 'auto|tensorflow-gpu|tensorflow|wasm|cpu')
    .option('--seed <n>', 'seed of every run', intFlag('--seed', 0), 0)
    .option('--json', 'one JSON object on the last line')
    .action(action(async (o: { task: string; methods: string; grid?: boolean; steps?: number; report?: string; backend?: string; seed: number; json?: boolean }) => {
      const methods = o.grid ? ablationGrid() : o.methods.split(',').map((m) => m.trim()).filter(Boolean);
      const results = await benchMethods({ task: o.task as BenchTask, methods, steps: o.steps, backend: o.backend, seed: o.seed });
      const files = o.report ? await writeReport(o.report, o.grid ? 'grid' : 'bubbles', o.task, results) : [];
      printResult(!!o.json, { task: o.task, results, files });
    }));
  bench
    .command('pca')
    .description("the paper's Figure 9: |cos| between the principal components of a full fine-tuning update and the summation, random and learned (LoRA r=1) compression vectors, per layer type")
    .option('--task <name>', Object.keys(BENCH_TASKS).join('|'), 'tiny-llama-math')
    .option('--steps <n>', 'optimizer steps of the full and the LoRA run', intFlag('--steps', 1), 30)
    .option('--report <dir>', 'write pca.svg, pca.png and pca.json here')
    .option('--backend <name>', 'auto|tensorflow-gpu|tensorflow|wasm|cpu')
    .option('--json', 'one JSON object on the last line')
    .action(action(async (o: { task: string; steps: number; report?: string; backend?: string; json?: boolean }) => {
      if (!(o.task in BENCH_TASKS)) throw new UserError(`--task ${o.task}: expected one of ${Object.keys(BENCH_TASKS).join(', ')}`);
      const r = await benchPca({ task: o.task as BenchTask, steps: o.steps, backend: o.backend });
      const files = o.report ? await writePcaPlot(o.report, r) : [];
      printResult(!!o.json, { ...r, files });
    }));
}

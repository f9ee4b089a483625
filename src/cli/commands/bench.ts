// `onelora bench kernels|step|methods|pca|scaling|allreduce` (docs/architecture.md#cli-conventions): benchmarks print figures; they
// are never timed assertions.
import type { Command } from 'commander';
import { initBackend } from '../../backend/select.js';
import { benchKernels } from '../../bench/kernels.js';
import { ablationGrid, benchMethods, BENCH_TASKS, DEFAULT_METHODS, formatMethodsTable, type BenchTask } from '../../bench/methods.js';
import { benchPca } from '../../bench/pca.js';
import { writePcaPlot, writeReport } from '../../bench/report.js';
import { TINY_FID_NETWORK } from '../../eval/tiny-fid.js';
import { benchScaling, formatScaling } from '../../bench/scaling.js';
import { benchStep, benchStepPair, DEFAULT_STEP_SHAPE } from '../../bench/step.js';
import { UserError } from '../../errors.js';
import { backendOption, collect, floatFlag, intFlag } from '../flags.js';
import { resolveRunConfig } from '../run-flags.js';
import { action, printResult } from '../run.js';

export function registerBench(program: Command): void {
  const bench = program.command('bench').description('benchmarks that print their figures (never timed tests)');
  bench
    .command('kernels')
    .description('GFLOP/s of the plain matmul, the project\'s linear forward+backward, and attention matmuls')
    .addOption(backendOption())
    .option('--reps <n>', 'timed repetitions (median reported)', intFlag(1), 7)
    .option('--size <n>', 'matmul and linear as [n, n]·[n, n] instead of [1024, 256]·[256, 688] (4096: the 7B layer)', intFlag(1))
    .option('--json', 'one JSON object on the last line')
    .action(action(async (opts: { backend?: string; reps: number; size?: number; json?: boolean }) => {
      await initBackend(opts.backend);
      const r = await benchKernels({ reps: opts.reps, ...(opts.size ? { n: opts.size, k: opts.size, d: opts.size } : {}) });
      printResult(!!opts.json, r);
    }));
  const d = DEFAULT_STEP_SHAPE;
  bench
    .command('step')
    .description('one training step (forward, backward, AdamW) of a LLaMA-shaped model with random weights: step_s, tokens_per_s, peak_bytes, trainable')
    .option('--vocab <n>', 'vocabulary size', intFlag(2), d.vocab)
    .option('--dim <n>', 'hidden size', intFlag(2), d.dim)
    .option('--layers <n>', 'decoder layers', intFlag(1), d.layers)
    .option('--heads <n>', 'attention heads', intFlag(1), d.heads)
    .option('--ffn <n>', 'SwiGLU width', intFlag(1), d.ffn)
    .option('--seq <n>', 'tokens per sequence', intFlag(2), d.seq)
    .option('--batch <n>', 'sequences per step', intFlag(1), d.batch)
    .option('--method <spec>', 'method SPEC', '1lora')
    .addOption(backendOption())
    .option('--reps <n>', 'timed steps after one warm-up step (median reported)', intFlag(1), 5)
    .option('--profile', 'add the milliseconds per kernel of one step')
    .option('--vs <spec>', 'A/B against this method in the same process, steps taken by turns: both results and the median step ratio')
    .option('--json', 'one JSON object on the last line')
    .action(action(async (o: { vocab: number; dim: number; layers: number; heads: number; ffn: number; seq: number; batch: number; method: string; backend?: string; reps: number; profile?: boolean; vs?: string; json?: boolean }) => {
      await initBackend(o.backend);
      const shape = { vocab: o.vocab, dim: o.dim, layers: o.layers, heads: o.heads, ffn: o.ffn, seq: o.seq, batch: o.batch };
      if (o.vs && o.profile) throw new UserError('--profile and --vs: profile one method at a time');
      const opts = { method: o.method, shape, reps: o.reps, profile: !!o.profile };
      printResult(!!o.json, o.vs ? await benchStepPair(opts, o.vs) : await benchStep(opts));
    }));
  bench
    .command('scaling')
    .description('what N local workers buy here: the ceilings (N matmul processes; N independent `train` processes with 1/N of the batch, no communication) against `launch --workers N` on a preset, in rounds; speed-ups and efficiency')
    .option('--preset <name>', 'preset to train (default demo)')
    .option('--config <file>', 'run config YAML to train instead of a preset')
    .option('--workers <list>', 'comma list of worker counts (1, the baseline, is always measured)', '2')
    .option('--rounds <n>', 'rounds (medians reported)', intFlag(1), 1)
    .option('--max-steps <n>', 'optimizer steps of each launch', intFlag(3), 12)
    .option('--skip <n>', 'steps left out of samples/s at the start', intFlag(0), 2)
    .option('--ceiling-seconds <s>', 'seconds of each matmul ceiling measurement', floatFlag(), 6)
    .option('--set <key=value>', 'config override for every launch (repeatable)', collect, [] as string[])
    .option('--output <dir>', 'where the launches write their runs', 'bench-out/scaling')
    .addOption(backendOption())
    .option('--json', 'one JSON object on the last line')
    .action(action(async (o: { preset?: string; config?: string; workers: string; rounds: number; maxSteps: number; skip: number; ceilingSeconds: number; set: string[]; output: string; backend?: string; json?: boolean }) => {
      if (!(o.ceilingSeconds > 0)) throw new UserError(`--ceiling-seconds: expected a positive number, got ${o.ceilingSeconds}`);
      const workers = o.workers.split(',').map((w) => Number(w.trim()));
      if (o.config && o.preset) throw new UserError('give one of --preset NAME or --config FILE');
      const source: ['--preset' | '--config', string] = o.config ? ['--config', o.config] : ['--preset', o.preset ?? 'demo'];
      const { batch } = resolveRunConfig(o.config ? { config: o.config, set: o.set } : { preset: source[1], set: o.set });
      const r = await benchScaling({ batch, source, workers, rounds: o.rounds, maxSteps: o.maxSteps, skip: o.skip, output: o.output, ceilingSeconds: o.ceilingSeconds, backend: o.backend, sets: o.set });
      printResult(!!o.json, r, formatScaling(r));
    }));
  bench
    .command('methods')
    .description("the paper's four axes per method (time to best validation metric, the metric, peak memory, trainable parameters) on a small pre-trained base; --report writes report.md and the bubble plot (SVG, PNG)")
    .requiredOption('--task <name>', Object.keys(BENCH_TASKS).join('|'))
    .option('--methods <list>', 'comma list of method SPECs (1lora-random for the compression ablation)', DEFAULT_METHODS.join(','))
    .option('--grid', "the paper's ablation grid: every combination of 1lora, bitfit (β), difffit-gamma (γ), norms")
    .option('--steps <n>', 'optimizer steps per method (default: the task\'s)', intFlag(1))
    .option('--report <dir>', 'write report.md, bubbles.svg, bubbles.png and results.json here')
    .addOption(backendOption())
    .option('--seed <n>', 'seed of every run', intFlag(0), 0)
    .option('--warmup-steps <n>', 'untimed BitFit steps before the first method (wasm tier-up, JIT)', intFlag(0), 10)
    .option('--fid-samples <n>', "tiny-dit: samples per sample FID (default: the preset's 100; 0: no FID)", intFlag(0))
    .option('--json', 'one JSON object on the last line')
    .action(action(async (o: { task: string; methods: string; grid?: boolean; steps?: number; report?: string; backend?: string; seed: number; warmupSteps: number; fidSamples?: number; json?: boolean }) => {
      const methods = o.grid ? ablationGrid() : o.methods.split(',').map((m) => m.trim()).filter(Boolean);
      const { results, failed } = await benchMethods({ task: o.task as BenchTask, methods, steps: o.steps, backend: o.backend, seed: o.seed, warmupSteps: o.warmupSteps, fidSamples: o.fidSamples });
      const fidBefore = results.find((r) => r.fid_before !== undefined)?.fid_before;
      const notes = failed.map((f) => `- **${f.method} failed**: ${f.error}\n`).join('') + (failed.length ? '\n' : '') +
        (fidBefore !== undefined ? `Sample FID: after the last step, against the held-out images; features: ${TINY_FID_NETWORK}, see docs/dit.md. The base before training: ${fidBefore.toFixed(3)}.\n\n` : '');
      const files = o.report ? await writeReport(o.report, o.grid ? 'grid' : 'bubbles', o.task, results, notes) : [];
      printResult(!!o.json, { task: o.task, results, failed, files }, formatMethodsTable(o.task, results, failed, files));
      if (failed.length) process.exitCode = 1;
    }));
  bench
    .command('pca')
    .description("the paper's Figure 9: |cos| between the principal components of a full fine-tuning update and the summation, random and learned (LoRA r=1) compression vectors, per layer type")
    .option('--task <name>', Object.keys(BENCH_TASKS).join('|'), 'tiny-llama-math')
    .option('--steps <n>', 'optimizer steps of the full and the LoRA run', intFlag(1), 30)
    .option('--report <dir>', 'write pca.svg, pca.png and pca.json here')
    .addOption(backendOption())
    .option('--json', 'one JSON object on the last line')
    .action(action(async (o: { task: string; steps: number; report?: string; backend?: string; json?: boolean }) => {
      if (!(o.task in BENCH_TASKS)) throw new UserError(`--task ${o.task}: expected one of ${Object.keys(BENCH_TASKS).join(', ')}`);
      const r = await benchPca({ task: o.task as BenchTask, steps: o.steps, backend: o.backend });
      const files = o.report ? await writePcaPlot(o.report, r) : [];
      printResult(!!o.json, { ...r, files });
    }));
}

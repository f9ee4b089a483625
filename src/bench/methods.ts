// `onelora bench methods`: the paper's comparison (§4: "the best mean evaluation metric as y-axis,
// the required total (training and validation) wall clock time as x-axis, GPU memory as bar plot,
// number of trainable parameters as bubble area") on small pre-trained bases, one `train` run per
// method through the real trainer, so the four axes are what a run of that method costs here.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadPreset, repoRoot, type RunConfig } from '../config/index.js';
import { DEMO_SHAPES, demoShapes } from '../data/demo-data.js';
import { prepare } from '../data/prepare.js';
import { NothingToTrainError, RunError, UserError } from '../errors.js';
import { readJsonLines } from '../json-file.js';
import { childLog } from '../log.js';
import { train } from '../train/trainer.js';

const log = childLog('bench');

/** The tasks and the preset each one fine-tunes (the presets say how their bases were pre-trained). */
export const BENCH_TASKS = Object.freeze({
  'tiny-llama-math': { preset: 'demo', defaultSteps: 60, evalEvery: 10 },
  'tiny-vit': { preset: 'tiny-vit-demo', defaultSteps: 60, evalEvery: 10 },
  'tiny-dit': { preset: 'tiny-dit-demo', defaultSteps: 60, evalEvery: 10 },
  'tiny-depth': { preset: 'tiny-depth-demo', defaultSteps: 40, evalEvery: 10 },
});
export type BenchTask = keyof typeof BENCH_TASKS;

export const DEFAULT_METHODS = ['1lora', 'lora', 'dora', 'vera', 'mora1', 'mora6', 'bitfit', 'difffit', 'norms', 'all'];

/** The paper's ablation grid (§5.1): every non-empty subset of {1LoRA, β, γ, norms}. */
export function ablationGrid(): string[] {
  const parts = ['1lora', 'bitfit', 'difffit-gamma', 'norms'];
  const out: string[] = [];
  for (let mask = 1; mask < 1 << parts.length; mask++) out.push(parts.filter((_, i) => mask & (1 << i)).join('+'));
  return out;
}

export interface MethodResult {
  method: string;
  /** Wall seconds from the start of training to the end of the step whose evaluation was best (training and the evaluations before it). */
  time_to_best_s: number;
  metric: string;
  /** The best validation value (loss: lower is better; accuracy: higher). */
  value: number;
  lower_is_better: boolean;
  best_step: number;
  peak_bytes: number;
  /** The adapter's trainable elements, as `params` and `train` count them (src/peft/count.ts). */
  trainable: number;
  /** Elements of a task head created for the run (a ViT classifier, a DiT class table), trained but counted apart. */
  head?: number;
  total_wall_s: number;
  /**
   * Diffusion tasks: the tiny sample FID (src/eval/tiny-fid.ts) after the last step, and of the
   * base before the first (the same for every method). Lower is better; not comparable to Inception FIDs.
   */
  fid?: number;
  fid_before?: number;
}

export interface MethodsBenchOptions {
  readonly task: BenchTask;
  readonly methods: readonly string[];
  /** Optimizer steps per method (default: the task's). */
  readonly steps?: number;
  readonly backend?: string;
  readonly seed?: number;
  /** Where the runs write (default: a temporary directory, removed afterwards). */
  readonly workDir?: string;
  /**
   * Untimed steps of BitFit before the first method (default 10; 0: none): otherwise the first run
   * of a process alone pays wasm's tier-up to optimised code and the JIT of the JS between kernels,
   * which made the first method of a list look slower than it is (docs/performance.md).
   */
  readonly warmupSteps?: number;
  /** Diffusion tasks: samples per FID measurement (default: the preset's `diffusion.fid_samples`; 0: no FID). */
  readonly fidSamples?: number;
}

/** `cfg` with its sample FID switched off (0) or measured on `n` samples (docs/dit.md#sample-grids-and-fid). */
function withFidSamples(cfg: RunConfig, n: number | undefined): RunConfig {
  if (n === undefined || cfg.diffusion.vae === undefined) return cfg;
  return { ...cfg, diffusion: n > 0 ? { ...cfg.diffusion, fid_samples: n } : { ...cfg.diffusion, vae: undefined } };
}

/** MetaMath data for the LLaMA demo: the committed Arrow files, else prepared once into `work`. */
async function llamaData(work: string): Promise<string[]> {
  const root = repoRoot();
  const committed = path.join(root, 'data/demo/metamath-llama');
  if (fs.existsSync(path.join(committed, 'train.arrow'))) return [];
  const out = path.join(work, 'metamath-llama');
  if (!fs.existsSync(path.join(out, 'train.arrow'))) {
    await prepare({ dataset: 'metamath', input: path.join(root, 'data/demo/metamath-demo.json'), out, tokenizer: path.join(root, 'models/demo-llama'), valFraction: 0.1, seed: 0, maxLen: 256 });
  }
  return [`data.train=${path.join(out, 'train.arrow')}`, `data.validation=${path.join(out, 'validation.arrow')}`];
}

/** Test images per class of tiny-vit's bench test set (the preset's own test split has 6). */
const VIT_BENCH_TEST_PER_CLASS = 60;

/**
 * A 600-image held-out split for tiny-vit, drawn with its own seed (the demo split is seeds 0 and 1,
 * the base's pre-training 4321 and 4322): the preset's 60 test images put every PEFT method within
 * three images of the others, one image being 1.7 points of accuracy.
 */
async function vitTestData(work: string): Promise<string[]> {
  const out = path.join(work, 'shapes-bench');
  if (!fs.existsSync(path.join(out, 'test.arrow'))) {
    const raw = path.join(work, 'shapes-bench-raw');
    fs.mkdirSync(raw, { recursive: true });
    fs.writeFileSync(path.join(raw, 'data_batch_1.bin'), demoShapes(1, 6));
    fs.writeFileSync(path.join(raw, 'test_batch.bin'), demoShapes(VIT_BENCH_TEST_PER_CLASS, 7));
    fs.writeFileSync(path.join(raw, 'batches.meta.txt'), DEMO_SHAPES.join('\n') + '\n');
    await prepare({ dataset: 'cifar10', input: raw, out, imageSize: 32 });
  }
  return [`data.validation=${path.join(out, 'test.arrow')}`];
}

/** The run config of one method: the task's preset, shortened, evaluated often, no generation. */
export async function methodConfig(task: BenchTask, method: string, work: string, steps: number, seed = 0): Promise<RunConfig> {
  const t = BENCH_TASKS[task];
  const sets = [
    `method=${method}`, `seed=${seed}`, `schedule.total_steps=${steps}`, `schedule.warmup_steps=${Math.min(5, Math.floor(steps / 10))}`,
    `eval.every=${Math.max(1, Math.min(t.evalEvery, steps))}`, `checkpoint.every=0`, `checkpoint.keep=1`,
    ...(task === 'tiny-llama-math' ? ['eval.generate=false', ...(await llamaData(work))] : []),
    ...(task === 'tiny-vit' ? await vitTestData(work) : []),
  ];
  return loadPreset(t.preset, sets);
}

interface MetricsLine {
  step: number;
  wall_s?: number;
  eval?: Record<string, number>;
}

/** Best evaluation and the wall time at the end of its step, from a run's metrics.jsonl. */
export function bestFromMetrics(file: string, metric: string, lowerIsBetter: boolean): { step: number; value: number; wall: number } {
  const lines = readJsonLines(file) as MetricsLine[];
  const wallAt = new Map(lines.filter((l) => l.wall_s !== undefined).map((l) => [l.step, l.wall_s as number]));
  let best: { step: number; value: number; wall: number } | null = null;
  for (const l of lines) {
    const v = l.eval?.[metric];
    if (v === undefined || !Number.isFinite(v)) continue;
    if (!best || (lowerIsBetter ? v < best.value : v > best.value)) best = { step: l.step, value: v, wall: wallAt.get(l.step) ?? 0 };
  }
  if (!best) throw new Error(`${file}: no evaluation of '${metric}'`);
  return best;
}

/** A method whose run failed (a non-finite loss, say): reported, and the other methods still run. */
export interface MethodFailure {
  method: string;
  error: string;
}

export async function benchMethods(opts: MethodsBenchOptions): Promise<{ results: MethodResult[]; failed: MethodFailure[] }> {
  if (!(opts.task in BENCH_TASKS)) throw new UserError(`--task ${opts.task}: expected one of ${Object.keys(BENCH_TASKS).join(', ')}`);
  const work = opts.workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'onelora-bench-'));
  const steps = opts.steps ?? BENCH_TASKS[opts.task].defaultSteps;
  const results: MethodResult[] = [];
  const failed: MethodFailure[] = [];
  try {
    const warmup = opts.warmupSteps ?? 10;
    if (warmup > 0) {
      // The warm-up is untimed and unreported: no samples, no FID.
      const cfg = withFidSamples(await methodConfig(opts.task, 'bitfit', work, warmup, opts.seed ?? 0), 0);
      await train(cfg, { output: path.join(work, 'warm-up'), backend: opts.backend, quiet: true });
    }
    for (const method of opts.methods) {
      const cfg = withFidSamples(await methodConfig(opts.task, method, work, steps, opts.seed ?? 0), opts.fidSamples);
      const out = path.join(work, method.replace(/[^\w.+-]/g, '_'));
      let summary: Awaited<ReturnType<typeof train>>;
      try {
        summary = await train(cfg, { output: out, backend: opts.backend, quiet: true });
      } catch (err) {
        // A config mistake stops the bench (exit 2); a failed run or a method with nothing to train here is reported.
        if (!(err instanceof RunError || err instanceof NothingToTrainError)) throw err;
        log.warn({ method, err: err.message }, `${opts.task} ${method} failed; going on with the other methods`);
        // Repo-relative, as the committed reports under docs/bench/ are read in other clones.
        failed.push({ method, error: err.message.replaceAll(repoRoot() + path.sep, '') });
        continue;
      }
      const lower = cfg.eval.metric === 'loss' || cfg.eval.metric === 'rmse';
      const best = bestFromMetrics(path.join(out, 'metrics.jsonl'), cfg.eval.metric, lower);
      const r: MethodResult = {
        method, time_to_best_s: round(best.wall), metric: cfg.eval.metric, value: round(best.value, 4), lower_is_better: lower, best_step: best.step,
        peak_bytes: summary.peak_bytes, trainable: summary.trainable, head: summary.head, total_wall_s: round(summary.wall_s),
        ...(typeof summary.fid?.after === 'number' ? { fid: round(summary.fid.after, 3) } : {}),
        ...(typeof summary.fid?.before === 'number' ? { fid_before: round(summary.fid.before, 3) } : {}),
      };
      log.info(r, `${opts.task} ${method}`);
      results.push(r);
    }
  } finally {
    if (!opts.workDir) fs.rmSync(work, { recursive: true, force: true });
  }
  return { results, failed };
}

/** The FID column of the bench's table and report: after the last step, lower is better. */
export const FID_HEADER = 'sample FID ↓';
export const fidCell = (r: MethodResult): string => (r.fid !== undefined ? r.fid.toFixed(3) : '-');

function round(v: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** The human output of `bench methods`: one aligned row per method, the failures and files after it. */
export function formatMethodsTable(task: string, results: readonly MethodResult[], failed: readonly MethodFailure[], files: readonly string[] = []): string {
  const metric = results[0]?.metric ?? 'metric';
  const withFid = results.some((r) => r.fid !== undefined);
  const head = ['method', 'time to best (s)', `best ${metric} ${results[0]?.lower_is_better === false ? '↑' : '↓'}`, ...(withFid ? [FID_HEADER] : []), 'step', 'peak memory (MB)', 'trainable params'];
  const rows = results.map((r) => [r.method, r.time_to_best_s.toFixed(1), r.value.toFixed(4), ...(withFid ? [fidCell(r)] : []), String(r.best_step), (r.peak_bytes / 1e6).toFixed(1), r.trainable.toLocaleString('en-US')]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  // The method name reads left-aligned, the figures right-aligned (as the markdown report aligns them).
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [
    `${task}:`,
    line(head),
    ...rows.map(line),
    ...failed.map((f) => `${f.method} failed: ${f.error}`),
    ...(files.length ? [`wrote ${files.join(', ')}`] : []),
  ].join('\n');
}

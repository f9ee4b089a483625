// `onelora bench step`: one full training step (forward, backward, AdamW) of a LLaMA-shaped model
// with random weights, through the same TrainEngine the trainer uses, so the figure is what a run
// gets. scripts/bench-torch-step.py runs the same model and step in PyTorch for the reference.
// Medians after warm-up; printed, never asserted.
import type { RecordBatch } from 'apache-arrow';
import { tf } from '../backend/tf.js';
import { clearTransposeCache } from '../backend/linear.js';
import { clearAttentionCaches } from '../nn/attention.js';
import { randomModel } from '../models/hf.js';
import { LlamaModel } from '../models/llama.js';
import { parseLlamaConfig } from '../models/llama-config.js';
import { llamaFamily } from '../models/registry.js';
import { applyMethod } from '../peft/apply.js';
import { TrainEngine } from '../train/engine.js';
import type { Task } from '../train/task.js';
import { median } from './kernels.js';

export interface StepShape {
  readonly vocab: number;
  readonly dim: number;
  readonly layers: number;
  readonly heads: number;
  readonly ffn: number;
  readonly seq: number;
  readonly batch: number;
}

export interface StepBench {
  method: string;
  backend: string;
  shape: StepShape;
  step_s: number;
  tokens_per_s: number;
  peak_bytes: number;
  trainable: number;
  /** With --profile: milliseconds per kernel name over one step, largest first. */
  kernels?: Record<string, number>;
}

/** The benchmark shape: V=512 D=256 L=4 H=4 F=688 T=128 B=8. */
export const DEFAULT_STEP_SHAPE: StepShape = Object.freeze({ vocab: 512, dim: 256, layers: 4, heads: 4, ffn: 688, seq: 128, batch: 8 });

/** A LLaMA with seeded random weights at `shape` (no tokenizer, untied head). */
function benchLlama(shape: StepShape, seed = 0): LlamaModel {
  const hf = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu', vocab_size: shape.vocab, hidden_size: shape.dim,
    intermediate_size: shape.ffn, num_attention_heads: shape.heads, num_key_value_heads: shape.heads, num_hidden_layers: shape.layers,
    max_position_embeddings: Math.max(512, shape.seq), rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
  };
  return randomModel(llamaFamily, parseLlamaConfig(hf, 'bench step'), seed, hf);
}

/** Seeded token ids in [0, V): the same stream for every method. */
function randomIds(n: number, vocab: number, seed: number): Int32Array {
  const out = new Int32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s >>> 0) % vocab;
  }
  return out;
}

/** A causal-LM task over one fixed batch (every position is a label), so no Arrow decoding is timed. */
function fixedBatchTask(ids: Int32Array, b: number, t: number): Task<LlamaModel> {
  return {
    name: 'causal-lm',
    metric: { name: 'loss', lowerIsBetter: true },
    countUnits: () => b * (t - 1),
    lossSum: (model) => tf.tidy(() => {
      const x = tf.tensor2d(ids, [b, t], 'int32');
      return model.lossSum(x, x);
    }),
    evaluate: () => Promise.resolve({}),
  };
}

/**
 * Milliseconds per kernel name over one forward+backward. tf.profile records bytes but not time,
 * and wasm kernels run synchronously, so timing engine.runKernel around each call is exact enough.
 */
async function kernelBreakdown(engine: TrainEngine, units: number): Promise<Record<string, number>> {
  const ms = new Map<string, number>();
  const engineAny = tf.engine() as unknown as { runKernel: (name: string, ...rest: unknown[]) => unknown };
  const original = engineAny.runKernel.bind(engineAny);
  engineAny.runKernel = (name: string, ...rest: unknown[]) => {
    const t0 = performance.now();
    const out = original(name, ...rest);
    ms.set(name, (ms.get(name) ?? 0) + performance.now() - t0);
    return out;
  };
  try {
    await engine.computeGrads([{ rows: null as unknown as RecordBatch, ctx: { seed: 0, epoch: 0, sampleIds: [], training: true } }], units);
  } finally {
    engineAny.runKernel = original;
  }
  return Object.fromEntries([...ms].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, Math.round(v * 10) / 10]));
}

export interface StepBenchOptions {
  readonly method: string;
  readonly shape?: StepShape;
  readonly reps?: number;
  readonly warmup?: number;
  readonly seed?: number;
  readonly profile?: boolean;
}

interface Bench { engine: TrainEngine; units: number; step(i: number): Promise<{ s: number; peak: number }>; dispose(): void }

/** A model with the method applied, its engine and a fixed batch; step(i) times one full step. */
function makeBench(method: string, shape: StepShape, seed: number): Bench {
  const model = benchLlama(shape, seed);
  const peft = applyMethod(model, method, { seed });
  const { batch: b, seq: t } = shape;
  const task = fixedBatchTask(randomIds(b * t, shape.vocab, seed + 7), b, t);
  const engine = new TrainEngine(model, task, peft.trainable, {
    schedule: { name: 'constant', baseLr: 1e-4, warmupSteps: 0, totalSteps: 1000, minLrRatio: 0 },
    betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01, gradClip: 1, noDecay: () => false,
  });
  const units = b * (t - 1);
  const micro = [{ rows: null as unknown as RecordBatch, ctx: { seed: 0, epoch: 0, sampleIds: [], training: true } }];
  return {
    engine, units,
    async step(i) {
      const t0 = performance.now();
      const { grad, peakBytes } = await engine.computeGrads(micro, units);
      engine.applyUpdate(grad, i);
      return { s: (performance.now() - t0) / 1000, peak: peakBytes };
    },
    dispose() {
      peft.dispose();
      model.dispose();
      clearTransposeCache();
      clearAttentionCaches();
    },
  };
}


function summary(method: string, shape: StepShape, times: number[], peak: number, trainable: number): StepBench {
  const stepS = median(times);
  return {
    method, backend: tf.getBackend(), shape,
    step_s: round(stepS, 4), tokens_per_s: Math.round((shape.batch * shape.seq) / stepS), peak_bytes: peak, trainable,
  };
}

export async function benchStep(opts: StepBenchOptions): Promise<StepBench> {
  const shape = opts.shape ?? DEFAULT_STEP_SHAPE;
  const reps = opts.reps ?? 5;
  const warmup = opts.warmup ?? 1;
  const bench = makeBench(opts.method, shape, opts.seed ?? 0);
  try {
    const times: number[] = [];
    let peak = 0;
    for (let i = 0; i < warmup + reps; i++) {
      const { s, peak: p } = await bench.step(i);
      if (i >= warmup) times.push(s);
      peak = Math.max(peak, p);
    }
    const out = summary(opts.method, shape, times, peak, bench.engine.fused.size);
    if (opts.profile) out.kernels = await kernelBreakdown(bench.engine, bench.units);
    return out;
  } finally {
    bench.dispose();
  }
}

export interface PairBench { a: StepBench; b: StepBench; pairs: number; ratio: number; ratio_min: number; ratio_max: number }

/**
 * A/B in one process: `opts.method` and `vs` step by turns (a, b, b, a, …), so drift in the
 * machine's load falls on both; `ratio` is the median over pairs of step_a / step_b.
 */
export async function benchStepPair(opts: StepBenchOptions, vs: string): Promise<PairBench> {
  const shape = opts.shape ?? DEFAULT_STEP_SHAPE;
  const reps = opts.reps ?? 5;
  const warmup = opts.warmup ?? 1;
  // Each peak counts every live tensor, the other model's too: take out what the other holds.
  const before = tf.memory().numBytes;
  const a = makeBench(opts.method, shape, opts.seed ?? 0);
  const residentA = tf.memory().numBytes - before;
  const b = makeBench(vs, shape, opts.seed ?? 0);
  const residentB = tf.memory().numBytes - before - residentA;
  try {
    const ta: number[] = [];
    const tb: number[] = [];
    const peak = [0, 0];
    for (let i = 0; i < warmup + reps; i++) {
      const order = i % 2 === 0 ? [a, b] : [b, a];
      const got = new Map<Bench, { s: number; peak: number }>();
      for (const x of order) got.set(x, await x.step(i));
      const ra = got.get(a)!;
      const rb = got.get(b)!;
      peak[0] = Math.max(peak[0]!, ra.peak - residentB);
      peak[1] = Math.max(peak[1]!, rb.peak - residentA);
      if (i >= warmup) {
        ta.push(ra.s);
        tb.push(rb.s);
      }
    }
    const ratios = ta.map((x, i) => x / tb[i]!);
    return {
      a: summary(opts.method, shape, ta, peak[0]!, a.engine.fused.size), b: summary(vs, shape, tb, peak[1]!, b.engine.fused.size),
      pairs: ratios.length, ratio: round(median(ratios), 4), ratio_min: round(Math.min(...ratios), 4), ratio_max: round(Math.max(...ratios), 4),
    };
  } finally {
    a.dispose();
    b.dispose();
  }
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

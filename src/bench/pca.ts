// `onelora bench pca`: the paper's Figure 9 (§5.2) — PCA of a full fine-tuning update ΔW per
// layer, and the absolute cosine similarity of each principal component (sorted by singular
// value) with three compression vectors: the summation 1 (1LoRA), a fixed random c (ablation
// B.2) and the learned A of LoRA r = 1. PCs live in the input space: eigenvectors of ΔW ΔWᵀ with
// ΔW in kernel layout [in, out].
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sortedEigen } from '../nn/linalg.js';
import type { LinearRole } from '../nn/modules.js';
import { normalArray } from '../peft/init.js';
import { replicaBatches } from '../train/trainer.js';
import { setupRun, type RunSetup } from '../train/setup.js';
import { methodConfig, type BenchTask } from './methods.js';

export type LayerType = 'qkv' | 'attn_out' | 'mlp_first' | 'mlp_second';
const TYPE_OF: Partial<Record<LinearRole, LayerType>> = { q: 'qkv', k: 'qkv', v: 'qkv', qkv: 'qkv', attn_out: 'attn_out', mlp_in: 'mlp_first', mlp_gate: 'mlp_first', mlp_out: 'mlp_second' };

export interface PcaResult {
  task: string;
  steps: number;
  /** Per layer type and compression: mean over the type's layers of |cos(PC_i, c)|, i = 1.. */
  similarity: Record<LayerType, { summation: number[]; random: number[]; learned: number[] }>;
}

/** |cos(u, c)| for each PC u. */
function alignment(pcs: readonly Float64Array[], c: ArrayLike<number>): number[] {
  let cc = 0;
  for (let i = 0; i < c.length; i++) cc += (c[i] as number) ** 2;
  return pcs.map((u) => {
    let dot = 0;
    for (let i = 0; i < u.length; i++) dot += (u[i] as number) * (c[i] as number);
    return Math.abs(dot) / Math.sqrt(cc);
  });
}

/** Trains `method` for `steps` and returns the run (kept open) after the loop. */
async function trained(task: BenchTask, method: string, work: string, steps: number, backend?: string, beforeTraining?: (run: RunSetup) => void): Promise<RunSetup> {
  const cfg = await methodConfig(task, method, work, steps);
  const run = await setupRun(cfg, { backend });
  beforeTraining?.(run);
  for (let step = 0, seen = 0; step < steps; step++, seen += cfg.batch.global) {
    const micro = replicaBatches(run.train, cfg, seen);
    const units = micro.reduce((n, mb) => n + run.task.countUnits(mb.rows), 0);
    const { grad } = await run.engine.computeGrads(micro, Math.max(1, units));
    run.engine.applyUpdate(grad, step);
  }
  return run;
}

export async function benchPca(opts: { task: BenchTask; steps?: number; backend?: string }): Promise<PcaResult> {
  const steps = opts.steps ?? 30;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'onelora-pca-'));
  try {
    // Full fine-tuning: ΔW = W_after − W_before per target linear.
    const before = new Map<string, Float32Array>();
    const fullRun = await trained(opts.task, 'all', work, steps, opts.backend, (run) => {
      for (const l of run.model.linears()) before.set(l.path, (l.weight.dataSync() as Float32Array).slice());
    });
    const deltas = fullRun.model.linears().filter((l) => TYPE_OF[l.role]).map((l) => {
      const w = l.weight.dataSync() as Float32Array;
      const w0 = before.get(l.path) as Float32Array;
      return { path: l.path, type: TYPE_OF[l.role] as LayerType, k: l.inFeatures, d: l.outFeatures, delta: Float64Array.from(w, (x, i) => x - (w0[i] as number)) };
    });
    fullRun.close();
    const loraRun = await trained(opts.task, 'lora', work, steps, opts.backend);
    const learned = new Map(loraRun.model.linears().filter((l) => l.adapter).map((l) => [l.path, (l.adapter?.trainable().get('lora_A.weight')?.dataSync() as Float32Array).slice()]));
    loraRun.close();

    const sums = new Map<LayerType, { summation: number[][]; random: number[][]; learned: number[][] }>();
    for (const { path: p, type, k, d, delta } of deltas) {
      const cov = new Float64Array(k * k); // ΔW ΔWᵀ over the output axis: [k, d]·[d, k]
      for (let i = 0; i < k; i++) for (let j = i; j < k; j++) {
        let acc = 0;
        for (let o = 0; o < d; o++) acc += (delta[i * d + o] as number) * (delta[j * d + o] as number);
        cov[i * k + j] = cov[j * k + i] = acc;
      }
      const { vectors } = sortedEigen(cov, k);
      const e = sums.get(type) ?? { summation: [], random: [], learned: [] };
      e.summation.push(alignment(vectors, new Float64Array(k).fill(1)));
      e.random.push(alignment(vectors, normalArray(k, 0, `${p}.onelora_c`)));
      e.learned.push(alignment(vectors, learned.get(p) ?? new Float32Array(k)));
      sums.set(type, e);
    }
    const mean = (rows: number[][]): number[] => (rows[0] ?? []).map((_, i) => Math.round((rows.reduce((s, r) => s + (r[i] ?? 0), 0) / rows.length) * 1e4) / 1e4);
    const similarity = Object.fromEntries([...sums].map(([t, e]) => [t, { summation: mean(e.summation), random: mean(e.random), learned: mean(e.learned) }])) as PcaResult['similarity'];
    return { task: opts.task, steps, similarity };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

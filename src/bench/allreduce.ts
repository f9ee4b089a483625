// `onelora bench allreduce`: N worker processes on loopback ZeroMQ, each running
// src/bench/allreduce-worker.ts; latency and bus bandwidth per buffer size and process count, the
// direct/ring crossover that sets RING_THRESHOLD_ELEMENTS, and the LLaMA-2-7B 1LoRA gradient.
// Bus bandwidth follows nccl-tests: 2(n-1)/n × bytes / time, the per-link rate a ring needs.
import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { RING_THRESHOLD_ELEMENTS, chooseAlgorithm } from '../comm/allreduce.js';
import type { BenchCase, BenchCaseResult, ChildMessage, ParentMessage } from './allreduce-worker.js';
import { RunError, UserError } from '../errors.js';
import { childLog } from '../log.js';

const log = childLog('bench-allreduce');

/** Σ out features over q,k,v,o,gate,up,down × 32 layers of LLaMA-2-7B: 1LoRA's trainable floats. */
const LLAMA2_7B_1LORA_FLOATS = 32 * (4 * 4096 + 2 * 11008 + 4096);

export interface BenchAllreduceOptions {
  /** Buffer sizes in bytes (default 4 KiB, 64 KiB, 1 MiB, 16 MiB, 64 MiB). */
  sizes?: number[];
  /** Process counts (default 2, 4, 8, 16). */
  procs?: number[];
  /** Also time direct against ring around the threshold (default true). */
  crossover?: boolean;
  /** Time the 1.36 M-float LLaMA-2-7B 1LoRA gradient on 16 processes (default true). */
  llama?: boolean;
  /** Accepted for the CLI's sake: results are returned, never printed here. */
  json?: boolean;
}

export interface BenchRow {
  procs: number;
  bytes: number;
  algorithm: 'ring' | 'direct';
  iterations: number;
  latencyMs: number;
  busGBps: number;
}

export interface BenchAllreduceResult {
  machine: { cpus: number; cpuModel: string; node: string };
  thresholdElements: number;
  rows: BenchRow[];
  crossover: { procs: number; bytes: number; directMs: number; ringMs: number }[];
  /** Groups that failed (e.g. an all-reduce timeout), with the message; their figures are missing. */
  errors: { procs: number; message: string }[];
  llama2_7b_1lora: { procs: number; floats: number; bytes: number; algorithm: string; ms: number } | null;
  wallS: number;
}

const DEFAULT_SIZES = [4 << 10, 64 << 10, 1 << 20, 16 << 20, 64 << 20];
const DEFAULT_PROCS = [2, 4, 8, 16];
const CROSSOVER_BYTES = [16 << 10, 64 << 10, 128 << 10, 256 << 10, 1 << 20];

/** Enough repetitions to average out timer noise, few enough that 64 MB × 16 processes stays short. */
function iterationsFor(bytes: number): number {
  return Math.max(1, Math.min(20, Math.floor((4 << 20) / bytes)));
}

const busGBps = (n: number, bytes: number, ms: number): number => (((2 * (n - 1)) / n) * bytes) / (ms / 1000) / 1e9;

/** Forks n bench workers, runs the cases on all of them, returns rank 0's timings. */
async function runGroup(n: number, cases: BenchCase[]): Promise<BenchCaseResult[]> {
  const entry = fileURLToPath(new URL('./allreduce-worker.ts', import.meta.url));
  const children: ChildProcess[] = [];
  const endpoints: string[] = new Array<string>(n);
  let results: BenchCaseResult[] | null = null;
  try {
    await new Promise<void>((resolve, reject) => {
      let bound = 0;
      let finished = 0;
      for (let rank = 0; rank < n; rank++) {
        const child = fork(entry, [String(rank), String(n)], {
          execArgv: ['--import', 'tsx'],
          env: { ...process.env, ONELORA_LOG: process.env.ONELORA_LOG ?? 'warn' },
          stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
        });
        children.push(child);
        child.on('exit', (code) => {
          if (code !== 0) reject(new RunError(`bench worker ${rank} of ${n} exited with code ${code}`));
        });
        child.on('message', (raw) => {
          const m = raw as ChildMessage;
          if (m.type === 'endpoint') {
            endpoints[m.rank] = m.endpoint;
            if (++bound === n) {
              const msg: ParentMessage = { type: 'peers', endpoints, cases };
              for (const c of children) c.send(msg);
            }
          } else if (m.type === 'error') {
            reject(new RunError(`bench worker ${m.rank} of ${n}: ${m.message}`));
          } else {
            if (m.rank === 0) results = m.results;
            if (++finished === n) resolve();
          }
        });
      }
    });
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  }
  if (!results) throw new RunError(`bench group of ${n}: rank 0 sent no results`);
  return results;
}

function validate(name: string, values: number[], min: number): void {
  for (const v of values) {
    if (!Number.isInteger(v) || v < min) throw new UserError(`--${name}: ${v} is not an integer ≥ ${min}`);
  }
}

export async function benchAllreduce(opts: BenchAllreduceOptions = {}): Promise<BenchAllreduceResult> {
  const sizes = opts.sizes ?? DEFAULT_SIZES;
  const procs = opts.procs ?? DEFAULT_PROCS;
  validate('sizes', sizes, 4);
  validate('procs', procs, 2);
  const t0 = Date.now();
  const rows: BenchRow[] = [];
  const crossover: BenchAllreduceResult['crossover'] = [];
  let llama: BenchAllreduceResult['llama2_7b_1lora'] = null;
  const errors: BenchAllreduceResult['errors'] = [];
  for (const n of procs) {
    const cases: BenchCase[] = sizes.map((bytes) => ({
      elements: Math.floor(bytes / 4),
      algorithm: chooseAlgorithm(Math.floor(bytes / 4), n),
      iterations: iterationsFor(bytes),
    }));
    const withCrossover = (opts.crossover ?? true) && n > 2;
    if (withCrossover) {
      for (const bytes of CROSSOVER_BYTES) {
        for (const algorithm of ['direct', 'ring'] as const) cases.push({ elements: bytes / 4, algorithm, iterations: iterationsFor(bytes) });
      }
    }
    const withLlama = (opts.llama ?? true) && n === 16;
    if (withLlama) cases.push({ elements: LLAMA2_7B_1LORA_FLOATS, algorithm: 'auto', iterations: 5 });
    log.info({ procs: n, cases: cases.length }, 'starting bench group');
    let res: BenchCaseResult[];
    try {
      res = await runGroup(n, cases);
    } catch (err) {
      log.error({ procs: n, err: (err as Error).message }, 'bench group failed');
      errors.push({ procs: n, message: (err as Error).message });
      continue;
    }
    for (const [i, r] of res.entries()) {
      const bytes = r.elements * 4;
      const algorithm = r.algorithm === 'auto' ? chooseAlgorithm(r.elements, n) : r.algorithm;
      if (i < sizes.length) {
        rows.push({ procs: n, bytes, algorithm, iterations: r.iterations, latencyMs: r.ms, busGBps: busGBps(n, bytes, r.ms) });
        log.info({ procs: n, bytes, algorithm, ms: r.ms.toFixed(3), busGBps: busGBps(n, bytes, r.ms).toFixed(3) }, 'all-reduce');
      } else if (withLlama && i === res.length - 1) {
        llama = { procs: n, floats: r.elements, bytes, algorithm, ms: r.ms };
      } else if (r.algorithm === 'ring') {
        const direct = res[i - 1];
        crossover.push({ procs: n, bytes, directMs: direct.ms, ringMs: r.ms });
        log.info({ procs: n, bytes, directMs: direct.ms.toFixed(3), ringMs: r.ms.toFixed(3) }, 'crossover');
      }
    }
  }
  const cpus = os.cpus();
  return {
    machine: { cpus: cpus.length, cpuModel: cpus[0]?.model ?? 'unknown', node: process.version },
    thresholdElements: RING_THRESHOLD_ELEMENTS,
    rows,
    crossover,
    errors,
    llama2_7b_1lora: llama,
    wallS: (Date.now() - t0) / 1000,
  };
}

/** A readable table of a result, for the CLI without --json. */
export function formatAllreduceBench(r: BenchAllreduceResult): string {
  const lines = [`all-reduce on loopback ZeroMQ, ${r.machine.cpus} CPUs (${r.machine.cpuModel}), ring from ${r.thresholdElements} floats`];
  lines.push('procs       bytes  algo      latency ms   bus GB/s');
  for (const row of r.rows) {
    lines.push(`${String(row.procs).padStart(5)} ${String(row.bytes).padStart(11)}  ${row.algorithm.padEnd(6)} ${row.latencyMs.toFixed(3).padStart(13)} ${row.busGBps.toFixed(3).padStart(10)}`);
  }
  if (r.crossover.length) {
    lines.push('crossover: procs bytes direct-ms ring-ms');
    for (const c of r.crossover) lines.push(`  ${c.procs} ${c.bytes} ${c.directMs.toFixed(3)} ${c.ringMs.toFixed(3)}`);
  }
  if (r.llama2_7b_1lora) {
    const l = r.llama2_7b_1lora;
    lines.push(`LLaMA-2-7B 1LoRA gradient (${l.floats} floats) on ${l.procs} processes: ${l.ms.toFixed(2)} ms (${l.algorithm})`);
  }
  for (const e of r.errors) lines.push(`FAILED on ${e.procs} processes: ${e.message}`);
  return lines.join('\n');
}

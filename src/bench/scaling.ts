// `onelora bench scaling`: what N local workers buy on this machine, and how much of it the
// distributed runtime keeps. Each round measures, one after the other:
//  - the matmul ceiling: one process alone, then N at once, each multiplying 512×512 matrices
//    (src/bench/ceiling-worker.ts). On a VM whose vCPUs share one physical core's vector units it is
//    far below N, and it moves as the host's other tenants come and go;
//  - the independent ceiling: N plain `onelora train` processes at once, each with 1/N of the
//    preset's global batch: the same compute per process as a worker, and no communication at all,
//    i.e. the most any data-parallel runtime can reach on this machine for this workload;
//  - `onelora launch --workers N`: samples/s over the steady steps, the slowest rank's phase split.
// efficiency = launch speed-up ÷ independent speed-up (both against 1 process with the whole batch).
// Rounds interleave the three so that a change in the machine's load falls on all of them.
import { execFile, fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { RunError, UserError } from '../errors.js';
import { readJsonLines, readTextFile } from '../json-file.js';
import { childLog } from '../log.js';
import type { CeilingReply } from './ceiling-worker.js';
import { median } from './kernels.js';

const log = childLog('bench-scaling');
const exec = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/onelora.js', import.meta.url));
const WORKER = fileURLToPath(new URL('./ceiling-worker.ts', import.meta.url));

export interface ScalingOptions {
  /** What each run trains: `--preset NAME` or `--config FILE`, as train and launch take them. */
  source: ['--preset' | '--config', string];
  /** Worker counts; 1 is always measured as the baseline. */
  workers: number[];
  maxSteps: number;
  /** Steps left out of samples/s at the start (start-up, first compilations). */
  skip: number;
  rounds: number;
  output: string;
  /** Seconds of each matmul ceiling measurement. */
  ceilingSeconds: number;
  backend?: string;
  /** Extra `--set key=value` for every run. */
  sets: string[];
  /** The preset's batch after the --set overrides (the caller resolves the config). */
  batch: { global: number; micro: number };
}

export interface RunFigures {
  samples_per_s: number; s_per_step: number; compute_s: number; allreduce_s: number; data_wait_s: number; optimizer_s: number; final_loss: number;
}
export interface ScalingRow {
  workers: number;
  matmul_gflops: number;
  /** Σ samples/s of N concurrent `train` processes with 1/N of the batch each. */
  independent_samples_per_s: number;
  launch: RunFigures;
  matmul_speedup: number;
  independent_speedup: number;
  launch_speedup: number;
  efficiency: number;
}
export interface ScalingRound { round: number; loadavg: number; rows: ScalingRow[] }
export interface ScalingResult {
  machine: { cpus: number; cpuModel: string };
  /** The preset's name or the config file. */
  run: string;
  steps: { max: number; measured_from: number };
  rounds: ScalingRound[];
  /** Per worker count, the median over rounds of each speed-up and of the efficiency. */
  median: { workers: number; matmul_speedup: number; independent_speedup: number; launch_speedup: number; efficiency: number }[];
}

/** Runs `procs` matmul processes together; the sum of their GFLOP/s. */
async function matmulCeiling(procs: number, seconds: number, backend?: string): Promise<number> {
  const children: ChildProcess[] = [];
  try {
    return await new Promise<number>((resolve, reject) => {
      let ready = 0;
      const values: number[] = [];
      for (let i = 0; i < procs; i++) {
        const child = fork(WORKER, [String(seconds), backend ?? ''], {
          execArgv: ['--import', 'tsx'], env: { ...process.env, ONELORA_LOG: 'warn' }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
        });
        children.push(child);
        child.on('exit', (code) => code !== 0 && reject(new RunError(`matmul ceiling process ${i} exited with code ${code}`)));
        child.on('message', (raw) => {
          const m = raw as CeilingReply;
          if (m.type === 'error') reject(new RunError(`matmul ceiling process ${i}: ${m.message}`));
          else if (m.type === 'ready' && ++ready === procs) for (const c of children) c.send('go');
          else if (m.type === 'result' && values.push(m.value) === procs) resolve(values.reduce((a, b) => a + b, 0));
        });
      }
    });
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  }
}

interface StepRow { step: number; wall_s: number; loss: number; compute_s?: number; allreduce_s?: number; data_wait_s?: number; optimizer_s?: number }

/** samples/s and phase means over steps skip+1 … last, from a run directory's metrics.jsonl and config.yaml. */
export function readRun(dir: string, skip: number): RunFigures {
  const metrics = path.join(dir, 'metrics.jsonl');
  const rows = (readJsonLines(metrics) as Partial<StepRow>[])
    .filter((r): r is StepRow => typeof r.step === 'number' && typeof r.wall_s === 'number');
  const global = (parseYaml(readTextFile(path.join(dir, 'config.yaml'))) as { batch: { global: number } }).batch.global;
  const from = rows.find((r) => r.step === skip);
  const last = rows[rows.length - 1];
  if (!from || !last || last.step <= from.step) throw new RunError(`${metrics}: needs step ${skip} and later ones to measure (has ${rows.map((r) => r.step).join(', ') || 'none'})`);
  const steady = rows.filter((r) => r.step > skip);
  const mean = (k: keyof StepRow): number => steady.reduce((a, r) => a + (Number(r[k]) || 0), 0) / steady.length;
  const sPerStep = (last.wall_s - from.wall_s) / (last.step - from.step);
  return {
    samples_per_s: global / sPerStep, s_per_step: sPerStep, compute_s: mean('compute_s'), allreduce_s: mean('allreduce_s'),
    data_wait_s: mean('data_wait_s'), optimizer_s: mean('optimizer_s'), final_loss: last.loss,
  };
}

async function cli(args: string[], what: string): Promise<void> {
  try {
    await exec(process.execPath, [BIN, ...args], { env: { ...process.env, ONELORA_LOG: process.env.ONELORA_LOG ?? 'warn' }, maxBuffer: 64 << 20 });
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? '').trim().split('\n').slice(-3).join('\n');
    throw new RunError(`${what} failed: ${stderr || (err as Error).message}`, { cause: err });
  }
}

function runArgs(o: ScalingOptions, output: string, extra: string[]): string[] {
  fs.rmSync(output, { recursive: true, force: true });
  const args = [...o.source, '--max-steps', String(o.maxSteps), '--output', output, '--json', '--set', 'eval.generate=false',
    '--set', 'eval.max_batches=1', '--set', 'checkpoint.every=0', ...o.sets.flatMap((s) => ['--set', s]), ...extra];
  return o.backend ? [...args, '--backend', o.backend] : args;
}

/** N concurrent `train` processes with global/N samples per step each (1: the whole batch); Σ samples/s. */
async function independent(o: ScalingOptions, n: number, global: number, dir: string): Promise<number> {
  const outs = Array.from({ length: n }, (_, i) => path.join(dir, `independent-${n}-${i}`));
  await Promise.all(outs.map((out, i) => cli(['train', ...runArgs(o, out, ['--set', `batch.global=${global / n}`])], `train (independent ${i + 1} of ${n})`)));
  return outs.reduce((a, out) => a + readRun(out, o.skip).samples_per_s, 0);
}


export async function benchScaling(o: ScalingOptions): Promise<ScalingResult> {
  if (o.workers.some((w) => !Number.isInteger(w) || w < 1)) throw new UserError(`--workers: expected a comma list of integers ≥ 1, got ${o.workers.join(',')}`);
  if (o.maxSteps <= o.skip + 1) throw new UserError(`--max-steps ${o.maxSteps} must exceed --skip ${o.skip} by at least 2`);
  const counts = [...new Set([1, ...o.workers])].sort((a, b) => a - b);
  const { batch } = o;
  for (const n of counts) {
    if (batch.global % (n * batch.micro) !== 0) throw new UserError(`--workers ${n}: batch.global ${batch.global} is not divisible by ${n} × batch.micro ${batch.micro}`);
  }
  const rounds: ScalingRound[] = [];
  for (let r = 0; r < o.rounds; r++) {
    const dir = path.join(o.output, `round-${r + 1}`);
    const raw: Omit<ScalingRow, 'matmul_speedup' | 'independent_speedup' | 'launch_speedup' | 'efficiency'>[] = [];
    for (const n of counts) {
      const matmul = await matmulCeiling(n, o.ceilingSeconds, o.backend);
      const indep = await independent(o, n, batch.global, dir);
      const out = path.join(dir, `launch-${n}`);
      await cli(['launch', ...runArgs(o, out, ['--workers', String(n)])], `launch --workers ${n}`);
      const launch = readRun(out, o.skip);
      log.info({ round: r + 1, workers: n, matmul_gflops: matmul.toFixed(1), independent: indep.toFixed(2), launch: launch.samples_per_s.toFixed(2) }, `round ${r + 1}, ${n} process(es)`);
      raw.push({ workers: n, matmul_gflops: matmul, independent_samples_per_s: indep, launch });
    }
    const one = raw[0]!;
    const rows = raw.map((x) => {
      const independentSpeedup = x.independent_samples_per_s / one.independent_samples_per_s;
      const launchSpeedup = x.launch.samples_per_s / one.launch.samples_per_s;
      return {
        ...x, matmul_speedup: x.matmul_gflops / one.matmul_gflops, independent_speedup: independentSpeedup,
        launch_speedup: launchSpeedup, efficiency: launchSpeedup / independentSpeedup,
      };
    });
    rounds.push({ round: r + 1, loadavg: os.loadavg()[0]!, rows });
  }
  const cpus = os.cpus();
  return {
    machine: { cpus: cpus.length, cpuModel: cpus[0]?.model ?? 'unknown' },
    run: o.source[1], steps: { max: o.maxSteps, measured_from: o.skip }, rounds,
    median: counts.map((workers) => {
      const rows = rounds.map((r) => r.rows.find((x) => x.workers === workers)!);
      const m = (k: 'matmul_speedup' | 'independent_speedup' | 'launch_speedup' | 'efficiency'): number => median(rows.map((x) => x[k]));
      return { workers, matmul_speedup: m('matmul_speedup'), independent_speedup: m('independent_speedup'), launch_speedup: m('launch_speedup'), efficiency: m('efficiency') };
    }),
  };
}

const f = (v: number, d = 2): string => v.toFixed(d);

/** The human-readable tables for the CLI without --json. */
export function formatScaling(r: ScalingResult): string {
  const lines = [`${r.machine.cpus} CPUs (${r.machine.cpuModel}); ${r.run}, samples/s over steps ${r.steps.measured_from + 1}-${r.steps.max}`];
  lines.push('round load  N  matmul GFLOP/s (x)  independent samples/s (x)  launch samples/s (x)  efficiency  compute_s  allreduce_s  final loss');
  for (const round of r.rounds) {
    for (const x of round.rows) {
      lines.push(`${String(round.round).padStart(5)} ${f(round.loadavg, 1).padStart(4)} ${String(x.workers).padStart(2)} ${`${f(x.matmul_gflops, 1)} (${f(x.matmul_speedup)})`.padStart(19)} ${`${f(x.independent_samples_per_s)} (${f(x.independent_speedup)})`.padStart(26)} ${`${f(x.launch.samples_per_s)} (${f(x.launch_speedup)})`.padStart(21)} ${f(x.efficiency).padStart(11)} ${f(x.launch.compute_s, 3).padStart(10)} ${f(x.launch.allreduce_s, 3).padStart(12)} ${x.launch.final_loss.toFixed(5).padStart(11)}`);
    }
  }
  lines.push('median over rounds:');
  for (const m of r.median) lines.push(`  N=${m.workers}: matmul ${f(m.matmul_speedup)}x, independent ${f(m.independent_speedup)}x, launch ${f(m.launch_speedup)}x, efficiency ${f(m.efficiency)}`);
  return lines.join('\n');
}

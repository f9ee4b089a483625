// `onelora doctor [--json]`: what this machine offers onelora, as `python -m torch.utils.collect_env`
// and `nvidia-smi` answer for PyTorch: Node, each tensor backend (available, or why not), the
// WebGPU adapter and its limits, CUDA_VISIBLE_DEVICES, wasm's SIMD and threads, and a short
// matmul GFLOP/s on every available backend (a sanity figure, not a benchmark).
import os from 'node:os';
import type { Command } from 'commander';
import { BACKEND_CHOICES, initBackend, tf, type BackendName } from '../../backend/select.js';
import { KEY_LIMITS, probeAdapter, type AdapterSummary } from '../../backend/webgpu.js';
import { UserError, messageOf } from '../../errors.js';
import { floatFlag } from '../flags.js';
import { action, printResult } from '../run.js';

interface DoctorFlags {
  json?: boolean;
  seconds?: number;
}

interface BackendRow {
  name: BackendName;
  available: boolean;
  /** Why not, when unavailable. */
  reason?: string;
  /** tfjs's backend id once active. */
  tf_backend?: string;
  matmul?: { n: number; gflops: number; runs: number };
}

export interface DoctorReport {
  node: string;
  platform: string;
  cpus: number;
  cuda_visible_devices: string | null;
  webgpu_adapter_env: string | null;
  backends: BackendRow[];
  webgpu: (Omit<AdapterSummary, 'limits'> & { limits: Record<string, number> }) | { error: string };
  wasm: { simd: boolean; threads: boolean; threads_count: number | null } | { error: string };
}

/** Square matMuls of side n for about `seconds`, results read back: GFLOP/s (2n³ per product). */
async function matmulRate(n: number, seconds: number): Promise<{ n: number; gflops: number; runs: number }> {
  const a = tf.randomNormal([n, n], 0, 1, 'float32', 1);
  const b = tf.randomNormal([n, n], 0, 1, 'float32', 2);
  try {
    const once = async (): Promise<void> => {
      const c = tf.matMul(a, b);
      await c.data();
      c.dispose();
    };
    await once(); // kernel compilation / packing
    let runs = 0;
    const t0 = performance.now();
    while (runs === 0 || performance.now() - t0 < seconds * 1000) {
      await once();
      runs++;
    }
    const s = (performance.now() - t0) / 1000;
    return { n, gflops: Math.round(((2 * n ** 3 * runs) / s / 1e9) * 100) / 100, runs };
  } finally {
    tf.dispose([a, b]);
  }
}

async function wasmState(): Promise<DoctorReport['wasm']> {
  try {
    const { getThreadsCount } = (await import('@tensorflow/tfjs-backend-wasm')) as { getThreadsCount?: () => number };
    return {
      simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT') as boolean,
      threads: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT') as boolean,
      threads_count: tf.getBackend() === 'wasm' && getThreadsCount ? getThreadsCount() : null,
    };
  } catch (err) {
    return { error: messageOf(err) };
  }
}

/** Probes every backend in `auto`'s order (tensorflow-gpu and tensorflow share one tfjs id: the first that loads is timed). */
async function doctor(seconds: number): Promise<DoctorReport> {
  let webgpu: DoctorReport['webgpu'];
  try {
    webgpu = await probeAdapter();
  } catch (err) {
    webgpu = { error: messageOf(err) };
  }
  const rows: BackendRow[] = [];
  let wasm: DoctorReport['wasm'] | null = null;
  const timed = new Set<string>();
  for (const name of BACKEND_CHOICES.filter((c) => c !== 'auto') as BackendName[]) {
    try {
      const info = await initBackend(name, { logLevel: 'debug' });
      const row: BackendRow = { name, available: true, tf_backend: info.tfBackend };
      if (name === 'wasm') wasm = await wasmState();
      if (!timed.has(info.tfBackend)) {
        timed.add(info.tfBackend);
        // The pure-JS cpu backend runs ~0.1 GFLOP/s: a smaller product keeps its few runs short.
        row.matmul = await matmulRate(name === 'cpu' ? 128 : 512, seconds);
      }
      rows.push(row);
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      rows.push({ name, available: false, reason: err.message.replace(/^backend '[^']+' is not available: [^:]+: /, '') });
    }
  }
  return {
    node: process.version, platform: `${process.platform}-${process.arch}`, cpus: os.availableParallelism(),
    cuda_visible_devices: process.env.CUDA_VISIBLE_DEVICES ?? null,
    webgpu_adapter_env: process.env.ONELORA_WEBGPU_ADAPTER ?? null,
    backends: rows, webgpu, wasm: wasm ?? (await wasmState()),
  };
}

function human(r: DoctorReport): string {
  const lines = [`node       ${r.node} (${r.platform}, ${r.cpus} CPUs)`, `CUDA_VISIBLE_DEVICES ${r.cuda_visible_devices ?? '(unset)'}`];
  if ('error' in r.webgpu) lines.push(`webgpu     no adapter: ${r.webgpu.error}`);
  else {
    const w = r.webgpu;
    lines.push(`webgpu     ${w.description} (vendor ${w.vendor || '-'}, architecture ${w.architecture || '-'}${w.software ? ', software' : ''}; ${w.selection})`);
    for (const k of KEY_LIMITS) lines.push(`  ${k.padEnd(34)} ${w.limits[k] ?? '-'}`);
  }
  lines.push('error' in r.wasm ? `wasm       ${r.wasm.error}` : `wasm       SIMD ${r.wasm.simd ? 'yes' : 'no'}, threads ${r.wasm.threads ? `yes (${r.wasm.threads_count ?? '?'})` : 'no'}`);
  lines.push('backends');
  for (const b of r.backends) {
    const rate = b.matmul ? `  matmul ${b.matmul.n}x${b.matmul.n}: ${b.matmul.gflops} GFLOP/s` : '';
    lines.push(`  ${b.name.padEnd(15)} ${b.available ? `available${rate}` : `no: ${b.reason}`}`);
  }
  return lines.join('\n');
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('what this machine offers: node, each backend (or why not), the WebGPU adapter, CUDA_VISIBLE_DEVICES, wasm SIMD/threads, matmul GFLOP/s')
    .option('--seconds <s>', 'seconds of matmul timing per available backend (default 5)', floatFlag())
    .option('--json', 'one JSON object on the last line')
    .action(action(async (f: DoctorFlags) => {
      const r = await doctor(f.seconds ?? 5);
      printResult(!!f.json, r, human(r));
    }));
}

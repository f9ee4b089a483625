// A job of real `onelora` processes for fault tests and `npm run check:faults`: the coordinator
// and each worker started as its own CLI process (in a network namespace where a test needs one),
// their stderr collected, their exit codes and exit times recorded.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import type { Host, Net } from './netns.js';

export const BIN = new URL('../../bin/onelora.js', import.meta.url).pathname;

export interface Proc {
  name: string;
  child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal). */
  exit: Promise<number | null>;
  /** performance.now() at exit, once exited. */
  exitedAt: number | null;
  stderr(): string;
  /** Date.now() when the first stderr line matching `re` arrived; null if none did. */
  lineAt(re: RegExp): number | null;
}

/** Starts `node bin/onelora.js ARGS` (inside `host`'s namespace when given). */
export function start(name: string, args: string[], env: NodeJS.ProcessEnv, host?: Host): Proc {
  const argv = [process.execPath, BIN, ...args];
  const fullEnv = { ...process.env, ONELORA_LOG: 'info', ...env };
  const child = host ? host.spawn(argv, fullEnv) : spawn(argv[0]!, argv.slice(1), { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  const lines: { at: number; text: string }[] = [];
  child.stdout?.resume();
  child.stderr?.on('data', (d: Buffer) => {
    const at = Date.now();
    err += d.toString();
    for (const text of d.toString().split('\n')) if (text) lines.push({ at, text });
  });
  const p: Proc = {
    name, child, exitedAt: null, stderr: () => err,
    lineAt: (re) => lines.find((l) => re.test(l.text))?.at ?? null,
    exit: new Promise((resolve) => child.on('exit', (code) => {
      p.exitedAt = Date.now();
      resolve(code);
    })),
  };
  return p;
}

/**
 * A job started by hand across namespaces: `onelora coordinator` on the hub (port 29400) and one
 * `onelora worker --rank r` per host, advertising the host's address unless `advertise` is false.
 */
export function manualJob(net: Net, cfgFile: string, out: string, opts: { token: string; advertise?: boolean; maxSteps?: number; env?: NodeJS.ProcessEnv; workerArgs?: (rank: number) => string[] }): { coordinator: Proc; workers: Proc[]; all: Proc[] } {
  const env = { ONELORA_JOB_TOKEN: opts.token, ...opts.env };
  const steps = opts.maxSteps ? ['--max-steps', String(opts.maxSteps)] : [];
  const coordinator = start('coordinator', ['coordinator', '--config', cfgFile, '--workers', String(net.hosts.length), '--output', out, '--bind', `${net.hub.ip}:29400`, ...steps], env, net.hub);
  const workers = net.hosts.map((h, r) => start(`rank ${r}`, ['worker', '--coordinator', `${net.hub.ip}:29400`, '--rank', String(r), ...(opts.advertise === false ? [] : ['--advertise', h.ip]), '--backend', 'wasm', ...(opts.workerArgs?.(r) ?? [])], env, h));
  return { coordinator, workers, all: [coordinator, ...workers] };
}

/** The largest |a - b| over the tensors of two runs' published adapters. */
export function adapterDiff(outA: string, outB: string): number {
  const read = (out: string) => readSafetensors(path.join(out, 'adapter', 'adapter_model.safetensors')).tensors;
  const b = read(outB);
  let d = 0;
  for (const [k, t] of read(outA)) {
    const x = t.data as Float32Array;
    const y = b.get(k)?.data as Float32Array | undefined;
    if (!y || y.length !== x.length) return Infinity;
    for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i]! - y[i]!));
  }
  return d;
}

/** Waits until `pred` holds, polling every 200 ms; false after `ms`. */
export async function until(pred: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!pred()) {
    if (performance.now() > end) return false;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return true;
}

/** The optimizer steps `metrics.jsonl` of run directory `out` records so far. */
export function stepsLogged(out: string): number {
  const f = path.join(out, 'metrics.jsonl');
  if (!fs.existsSync(f)) return 0;
  return fs.readFileSync(f, 'utf8').split('\n').filter((l) => l.includes('"straggler"')).length;
}

/** Waits for every process to exit (at most `ms`); kills what is left and says who it was. */
export async function allExit(procs: Proc[], ms: number): Promise<string[]> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(procs.map((p) => p.exit)), new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
  const alive = procs.filter((p) => p.exitedAt === null);
  for (const p of alive) p.child.kill('SIGKILL');
  await Promise.all(alive.map((p) => p.exit));
  return alive.map((p) => p.name);
}

// A job of real `onelora` processes for fault tests and `npm run check:faults`: the coordinator
// and each worker started as its own CLI process (in a network namespace where a test needs one),
// their stderr collected, their exit codes and exit times recorded.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Host } from './netns.js';

export const BIN = new URL('../../bin/onelora.js', import.meta.url).pathname;

export interface Proc {
  name: string;
  child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal). */
  exit: Promise<number | null>;
  /** performance.now() at exit, once exited. */
  exitedAt: number | null;
  stderr(): string;
}

/** Starts `node bin/onelora.js ARGS` (inside `host`'s namespace when given). */
export function start(name: string, args: string[], env: NodeJS.ProcessEnv, host?: Host): Proc {
  const argv = [process.execPath, BIN, ...args];
  const fullEnv = { ...process.env, ONELORA_LOG: 'info', ...env };
  const child = host ? host.spawn(argv, fullEnv) : spawn(argv[0]!, argv.slice(1), { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stdout?.resume();
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const p: Proc = {
    name, child, exitedAt: null, stderr: () => err,
    exit: new Promise((resolve) => child.on('exit', (code) => {
      p.exitedAt = performance.now();
      resolve(code);
    })),
  };
  return p;
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

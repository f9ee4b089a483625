// `onelora launch`'s agent (like torchrun's): a coordinator in this process and N child
// `onelora worker` processes on loopback with a generated job token. A worker process that dies
// is restarted (same rank) when, and only when, the coordinator's failure policy decided to wait
// for a replacement: the one budget is the policy's (--max-failures, distributed.max_failures).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { selfScript } from '../src/install.js';
import { childLog, writeStderr } from '../src/log.js';
import type { TrainSummary } from '../src/train/loop.js';
import { failurePolicyFor } from './policy.js';
import { Coordinator, type CoordinatorOptions } from './server.js';

const log = childLog('launch');

export interface LaunchOptions extends Omit<CoordinatorOptions, 'token' | 'bind' | 'policy' | 'admit'> {
  backend?: string;
  /** Called once the coordinator listens (the dashboard reads its worker table). */
  onCoordinator?: (c: Coordinator) => void;
  /** Extra environment for the workers (tests). */
  env?: NodeJS.ProcessEnv;
}

export interface LaunchResult {
  summary: TrainSummary;
  restarts: number;
}

const BIN = selfScript();

export async function launch(opts: LaunchOptions): Promise<LaunchResult> {
  const token = process.env.ONELORA_JOB_TOKEN || randomBytes(24).toString('hex');
  // gRPC on a Unix socket in a directory only this user can enter: the token never crosses a
  // network interface (on 127.0.0.1 any local user could sniff or dial it), and only the processes
  // started below may register (docs/distributed.md#security-model).
  const sockDir = fs.mkdtempSync(path.join(os.tmpdir(), 'onelora-'));
  fs.chmodSync(sockDir, 0o700);
  const address = `unix:${path.join(sockDir, 'coordinator.sock')}`;
  const children = new Map<number, ChildProcess>();
  const admit = (workerId: string): boolean => [...children.values()].some((c) => workerId === `${os.hostname()}/${c.pid}`);
  const coordinator = new Coordinator({ ...opts, token, bind: address, policy: failurePolicyFor(opts.cfg, opts.workers), admit });
  try {
    await coordinator.start();
  } catch (err) {
    fs.rmSync(sockDir, { recursive: true, force: true });
    throw err;
  }
  opts.onCoordinator?.(coordinator);
  if (coordinator.finished) {
    fs.rmSync(sockDir, { recursive: true, force: true });
    return { summary: coordinator.finished, restarts: 0 };
  }
  let restarts = 0;
  let ended = false;
  const startWorker = (rank: number): void => {
    const args = [BIN, 'worker', '--coordinator', address, '--rank', String(rank), '--zmq-port', '0'];
    if (opts.backend) args.push('--backend', opts.backend);
    if (opts.curve) args.push('--zmq-curve');
    // A process group of its own: the terminal's Ctrl-C reaches only this process, which stops the
    // workers at a step boundary through the coordinator (killed with it, they could not checkpoint).
    // Their stderr comes through here, line by line, so it prints above the progress bar instead of
    // into it (src/log.ts writeStderr), each line tagged with its rank as torchrun tags it.
    const child = spawn(process.execPath, args, { env: { ...process.env, ...workerDevice(rank), ...opts.env, ONELORA_JOB_TOKEN: token, ONELORA_UNDER_LAUNCH: '1' }, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    // The CLI's last word (`onelora: …`) is the message of a worker that exits 2.
    let lastWord = '';
    if (child.stderr) {
      createInterface({ input: child.stderr, crlfDelay: Infinity }).on('line', (line) => {
        if (line.startsWith('onelora: ')) lastWord = line.slice('onelora: '.length);
        writeStderr(`[rank ${rank}] ${line}\n`);
      });
    }
    children.set(rank, child);
    child.on('exit', (code, signal) => {
      if (children.get(rank) === child) children.delete(rank);
      if (ended || code === 0) return;
      // Exit 2: a config, model or data file the worker read is wrong; a restart would read it again.
      if (code === 2) {
        const report = (): void => coordinator.workerConfigError(rank, lastWord || 'exited 2 (a config, model or data error: see its log above)');
        // stderr may still hold the last line: let the stream drain first.
        if (child.stderr && !child.stderr.closed) child.stderr.once('close', report);
        else report();
        return;
      }
      const detail = signal ? `killed by ${signal}` : `exit code ${code}`;
      if (!coordinator.workerExited(rank, `process ${child.pid} ${detail}`, `${os.hostname()}/${child.pid}`)) {
        log.warn({ rank }, `worker ${rank} ${detail}; not restarted (the coordinator goes on without it or stops the run)`);
        return;
      }
      restarts++;
      log.warn({ rank, restarts }, `worker ${rank} ${detail}; restarting it (restart ${restarts}, max_failures ${opts.cfg.distributed.max_failures})`);
      startWorker(rank);
    });
  };
  for (let r = 0; r < opts.workers; r++) startWorker(r);
  // An exit that skips the clean stop below (a second Ctrl-C) takes the workers with it.
  const killAll = (): void => void [...children.values()].forEach((c) => c.kill('SIGTERM'));
  process.once('exit', killAll);
  try {
    const summary = await coordinator.done;
    return { summary, restarts };
  } finally {
    ended = true;
    // Workers exit by themselves on Stop; a straggler gets a moment, then SIGTERM.
    await Promise.all([...children.values()].map((c) => waitExit(c, 10_000)));
    process.removeListener('exit', killAll);
    fs.rmSync(sockDir, { recursive: true, force: true });
  }
}

/**
 * One GPU per worker, as torchrun's users set it: with CUDA_VISIBLE_DEVICES=0,1,2,3 in launch's
 * environment, rank r sees only entry r mod 4 (tfjs-node-gpu through CUDA, webgpu through
 * src/backend/webgpu.ts). Unset, every worker sees what launch sees (2 ranks on one GPU).
 */
export function workerDevice(rank: number, visible = process.env.CUDA_VISIBLE_DEVICES): { CUDA_VISIBLE_DEVICES?: string } {
  const ids = (visible ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  return ids.length > 0 ? { CUDA_VISIBLE_DEVICES: ids[rank % ids.length] as string } : {};
}

function waitExit(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGTERM'), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

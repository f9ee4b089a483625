// `onelora launch`, `onelora coordinator`, `onelora worker` (docs/architecture.md#cli-conventions) and
// `onelora bench allreduce`: thin wrappers over coordinator/, worker/ and src/comm/.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { launch } from '../../../coordinator/launcher.js';
import { Coordinator } from '../../../coordinator/server.js';
import { DEFAULT_CONNECT_TIMEOUT_S, runWorker } from '../../../worker/worker.js';
import { loadConfig, type RunConfig } from '../../config/index.js';
import { checkRunInputs } from '../../train/plan.js';
import { MISSING_TOKEN } from '../../comm/proto.js';
import { clientCredentials, serverCredentials, type TlsFlags } from '../../comm/tls.js';
import { latestCheckpoint } from '../../checkpoint/checkpoint.js';
import { UserError } from '../../errors.js';
import { readJsonObject } from '../../json-file.js';
import { childLog } from '../../log.js';
import { backendOption, intFlag } from '../flags.js';
import { action, printResult } from '../run.js';
import { benchAllreduce, formatAllreduceBench } from '../../bench/allreduce.js';
import { interruptible } from '../interrupt.js';
import { addRunFlags, defaultOutput, OVERWRITE_HELP, RESUME_HELP, TENSORBOARD_HELP, resolveRunConfig, resumeCommand, type RunFlags } from '../run-flags.js';
import { formatSummary } from '../summary.js';
import { addDashboardFlags, withDashboard, type DashboardFlags } from './dashboard.js';

const log = childLog('launch');
/** How long a finished job's process may take to close its handles before it exits anyway. */
const EXIT_GRACE_MS = 3000;

interface LaunchFlags extends RunFlags, DashboardFlags {
  workers?: number;
  zmqCurve?: boolean;
  maxFailures?: number;
  minWorkers?: number;
  metricsPort?: number;
}

// The job token: every gRPC call and ZeroMQ message carries it (docs/distributed.md#processes-coordinatorserverts-worker-coordinatorlauncherts).
const TOKEN_HELP = `
Environment:
  ONELORA_JOB_TOKEN   the job's shared secret, the same for the coordinator and every worker
                      (required). Make one with:
                        export ONELORA_JOB_TOKEN=$(openssl rand -hex 24)
                      or, without openssl:
                        export ONELORA_JOB_TOKEN=$(node -e "console.log(require('crypto').randomBytes(24).toString('hex'))")`;

const CURVE_HELP = 'encrypt the workers\' ZeroMQ links with CURVE (env ONELORA_ZMQ_CURVE=1)';

/** --zmq-curve, else ONELORA_ZMQ_CURVE=1|true (a Kubernetes manifest sets it for the whole job). */
function curveOn(flag: boolean | undefined): boolean {
  return !!flag || ['1', 'true', 'yes'].includes((process.env.ONELORA_ZMQ_CURVE ?? '').toLowerCase());
}

/**
 * Once a job's process has its result, it exits within `ms` even should a handle linger (a gRPC
 * session to a partitioned peer, a ZeroMQ socket): a process of a failed job must not outlive it.
 * The timer is unref'd, so a process with nothing left exits at once as usual.
 */
function exitWithin(ms: number): void {
  setTimeout(() => {
    log.debug({ handles: process.getActiveResourcesInfo() }, `exiting: handles still open ${ms / 1000} s after the result`);
    process.exit();
  }, ms).unref();
}

function checkWorkers(cfg: RunConfig, workers: number): void {
  const { global, micro } = cfg.batch;
  if (global % (workers * micro) !== 0) {
    throw new UserError(`batch.global ${global} is not divisible by --workers ${workers} × batch.micro ${micro}`);
  }
}

/**
 * The world size a resumed run had: its latest checkpoint's (trainer_state.json world_size, the group
 * that wrote it), else its config.yaml's distributed.workers (which `launch --workers` sets).
 */
function runWorldSize(dir: string, cfg: RunConfig): number {
  const ck = latestCheckpoint(dir);
  const state = ck ? path.join(ck, 'trainer_state.json') : null;
  const fromState = state && fs.existsSync(state) ? readJsonObject(state).world_size : undefined;
  const n = typeof fromState === 'number' && Number.isInteger(fromState) && fromState > 0 ? fromState : cfg.distributed.workers;
  const source = n === fromState ? `world_size of ${state}` : `distributed.workers of ${path.join(dir, 'config.yaml')}`;
  log.info({ workers: n }, `--resume ${dir}: ${n} worker(s), the run's own (${source}); give --workers to change it`);
  return n;
}

export function registerLaunch(program: Command): void {
  const cmd = addRunFlags(program.command('launch').description('train with N local worker processes: a coordinator here, workers restarted when they die'))
    .option('--workers <n>', 'worker processes (with --resume: default the run\'s own)', intFlag(1))
    .option('--max-failures <n>', 'worker restarts allowed (default 3)', intFlag(0))
    .option('--min-workers <n>', 'go on with this many workers after a loss instead of waiting for a restart', intFlag(1))
    .option('--metrics-port <port>', 'serve Prometheus /metrics on 127.0.0.1:PORT', intFlag(0))
    .option('--resume <dir>', RESUME_HELP)
    .option('--zmq-curve', CURVE_HELP);
  addDashboardFlags(cmd)
    .action(action(async (f: LaunchFlags) => {
      if (f.workers === undefined && !f.resume) throw new UserError('--workers <n> is required (it may be left out only with --resume DIR, which takes the run\'s own)');
      const cfg = resolveRunConfig(f);
      const workers = f.workers ?? runWorldSize(f.resume as string, cfg);
      checkWorkers(cfg, workers);
      const output = defaultOutput(f, cfg);
      await checkRunInputs(cfg, output, workers, true);
      const { summary } = await withDashboard(f, output, `launch ${path.basename(path.resolve(output))} · ${workers} workers`, (dash) =>
        interruptible(output, resumeCommand('launch', output, f, ` --workers ${workers}`), (signal) => launch({
          cfg, workers, output, resume: !!f.resume, overwrite: !!f.overwrite, maxSteps: f.maxSteps, metricsPort: f.metricsPort,
          backend: f.backend, curve: curveOn(f.zmqCurve), tensorboard: f.tensorboard, signal, onCoordinator: (c) => dash && (dash.group = () => c.groupSnapshot()),
        }))).finally(() => exitWithin(EXIT_GRACE_MS));
      printResult(!!f.json, summary, formatSummary(summary));
    }));
}

export function registerCoordinator(program: Command): void {
  const cmd = program
    .command('coordinator')
    .description('the job\'s gRPC coordinator: data, state machine, checkpoints, failures (workers connect to it)')
    .requiredOption('--config <file>', 'run config YAML (docs/config.md)')
    .requiredOption('--workers <n>', 'world size', intFlag(1))
    .requiredOption('--output <dir>', 'run output directory')
    .option('--bind <host:port>', 'gRPC address (127.0.0.1 unless told otherwise)', '127.0.0.1:29400')
    .option('--resume', 'continue from the latest checkpoint in --output (a finished run is left as it is)')
    .option('--overwrite', OVERWRITE_HELP)
    .option('--max-steps <n>', 'absolute optimizer step to stop at', intFlag(1))
    .option('--metrics-port <port>', 'serve Prometheus /metrics on 127.0.0.1:PORT', intFlag(0))
    .option('--no-tensorboard', TENSORBOARD_HELP)
    .option('--zmq-curve', `require every worker to use CURVE: ${CURVE_HELP}`)
    .option('--tls-cert <file>', 'serve gRPC over TLS with this PEM certificate (env ONELORA_TLS_CERT)')
    .option('--tls-key <file>', 'the certificate\'s PEM private key (env ONELORA_TLS_KEY)')
    .option('--tls-ca <file>', 'require worker client certificates signed by this PEM CA (env ONELORA_TLS_CA)')
    .option('--json', 'print the summary as one JSON object on the last line')
    .addHelpText('after', TOKEN_HELP);
  addDashboardFlags(cmd)
    .action(action(async (f: TlsFlags & DashboardFlags & { config: string; workers: number; output: string; bind: string; resume?: boolean; overwrite?: boolean; maxSteps?: number; metricsPort?: number; json?: boolean; zmqCurve?: boolean; tensorboard?: boolean }) => {
      const token = process.env.ONELORA_JOB_TOKEN ?? '';
      if (!token) throw new UserError(MISSING_TOKEN);
      const { credentials } = serverCredentials(f);
      const cfg = loadConfig(f.config);
      checkWorkers(cfg, f.workers);
      for (const m of await checkRunInputs(cfg, f.output, f.workers, false)) log.warn({ missing: m }, `not found on this machine: ${m}; every worker must have it`);
      const again = `onelora coordinator --config ${f.config} --workers ${f.workers} --output ${f.output} --resume${f.maxSteps !== undefined ? ` --max-steps ${f.maxSteps}` : ''}`;
      const summary = await withDashboard(f, f.output, `coordinator ${path.basename(path.resolve(f.output))} · ${f.workers} workers`, (dash) => interruptible(f.output, again, async (signal) => {
        const c = new Coordinator({
          cfg, workers: f.workers, output: f.output, token, bind: f.bind, resume: !!f.resume, firstStart: true, overwrite: !!f.overwrite, resumeHint: '--resume (with the same --output)',
          maxSteps: f.maxSteps, metricsPort: f.metricsPort, credentials, curve: curveOn(f.zmqCurve), tensorboard: f.tensorboard, signal,
        });
        await c.start();
        if (dash) dash.group = () => c.groupSnapshot();
        return c.done;
      })).finally(() => exitWithin(EXIT_GRACE_MS));
      printResult(!!f.json, summary, formatSummary(summary));
    }));
}

export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description('one training process of a job: registers with the coordinator, trains its share, all-reduces over ZeroMQ')
    .requiredOption('--coordinator <host:port>', 'the coordinator\'s gRPC address')
    .option('--rank <r>', 'this worker\'s rank (default: JOB_COMPLETION_INDEX, else assigned)', intFlag(0))
    .option('--advertise <host>', 'host other workers reach this one at (binds 0.0.0.0); default: 127.0.0.1 when the coordinator is on loopback, else this host\'s address on the route to it')
    .option('--zmq-port <port>', 'ZeroMQ port to bind (default: a free port, logged; give one where a firewall needs it)', intFlag(0))
    .option('--connect-timeout <s>', 'keep retrying an unreachable coordinator this long, with backoff', intFlag(0), DEFAULT_CONNECT_TIMEOUT_S)
    .addOption(backendOption())
    .option('--zmq-curve', CURVE_HELP)
    .option('--tls-ca <file>', 'connect over TLS, trusting this PEM CA (env ONELORA_TLS_CA)')
    .option('--tls-cert <file>', 'TLS client certificate, PEM (env ONELORA_TLS_CERT)')
    .option('--tls-key <file>', 'the client certificate\'s PEM private key (env ONELORA_TLS_KEY)')
    .addHelpText('after', TOKEN_HELP)
    .action(action(async (f: TlsFlags & { coordinator: string; rank?: number; advertise?: string; zmqPort?: number; connectTimeout: number; backend?: string; zmqCurve?: boolean }) => {
      const index = process.env.JOB_COMPLETION_INDEX;
      const rank = f.rank ?? (index !== undefined && index !== '' ? Number(index) : -1);
      const { credentials } = clientCredentials(f);
      await runWorker({ coordinator: f.coordinator, token: process.env.ONELORA_JOB_TOKEN ?? '', rank, advertise: f.advertise, zmqPort: f.zmqPort, connectTimeoutMs: f.connectTimeout * 1000, launched: process.env.ONELORA_UNDER_LAUNCH === '1', backend: f.backend, credentials, tls: f, curve: curveOn(f.zmqCurve) })
        .finally(() => exitWithin(EXIT_GRACE_MS));
    }));
}

/** Adds `allreduce` under the existing `bench` command. */
export function registerBenchAllreduce(program: Command): void {
  const bench = program.commands.find((c) => c.name() === 'bench') ?? program.command('bench');
  const list = (v: string): number[] => v.split(',').map(Number);
  bench
    .command('allreduce')
    .description('ZeroMQ all-reduce latency and bus bandwidth, 4 KiB … 64 MiB on 2-16 local processes, and the LLaMA-2-7B 1LoRA gradient')
    .option('--sizes <bytes,...>', 'buffer sizes in bytes', list)
    .option('--procs <n,...>', 'process counts', list)
    .option('--no-crossover', 'skip direct-vs-ring timings around the threshold')
    .option('--no-llama', 'skip the 1.36 M-float gradient on 16 processes')
    .option('--json', 'one JSON object on the last line')
    .action(action(async (o: { sizes?: number[]; procs?: number[]; crossover: boolean; llama: boolean; json?: boolean }) => {
      const r = await benchAllreduce({ sizes: o.sizes, procs: o.procs, crossover: o.crossover, llama: o.llama });
      printResult(!!o.json, r, formatAllreduceBench(r));
    }));
}

// `onelora worker` (docs/architecture.md#processes and #cli-conventions): register with the coordinator, build the run from the job
// spec (setupRun, the same code as `onelora train`), restore the committed state, then follow the
// coordinator's Control stream — start step k, restore (re-form the group), stop — until done.
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { initBackend } from '../src/backend/select.js';
import { AllReduceTimeoutError, allReduceSum } from '../src/comm/allreduce.js';
import { decodeJobSpec, type JobSpec } from '../src/comm/job.js';
import { CoordinatorClient, MISSING_TOKEN, type FailureReport, type RegisterReply } from '../src/comm/proto.js';
import type { TlsFlags } from '../src/comm/tls.js';
import type { Transport } from '../src/comm/transport.js';
import { readCheckpoint } from '../src/checkpoint/checkpoint.js';
import { DiskWriteError, RunError, UserError, messageOf } from '../src/errors.js';
import { childLog } from '../src/log.js';
import { checkModelSizes } from '../src/train/inputs.js';
import { setupRun, type RunSetup } from '../src/train/setup.js';
import { zmqBackend, type CommBackend } from './backend.js';
import { HeartbeatThread } from './heartbeat.js';
import { checkpointAtStop, fault, runStep, type Snapshot, type StepContext } from './step.js';

const log = childLog('worker');

export interface WorkerOptions {
  coordinator: string;
  token: string;
  /** --rank, else JOB_COMPLETION_INDEX, else -1 (the coordinator assigns one). */
  rank: number;
  advertise?: string;
  zmqPort?: number;
  backend?: string;
  /** ZeroMQ CURVE (worker --zmq-curve / ONELORA_ZMQ_CURVE=1); the coordinator must be started with it too. */
  curve?: boolean;
  /** gRPC channel credentials (src/comm/tls.ts); insecure by default. */
  credentials?: grpc.ChannelCredentials;
  /** The TLS files behind `credentials`, for the heartbeat thread's own channel. */
  tls?: TlsFlags;
  /** Heartbeat period (default 1 s). */
  heartbeatMs?: number;
  /**
   * How long Register keeps retrying an unreachable coordinator (worker --connect-timeout, default
   * 300 s): workers started by hand or by a scheduler may come up before their coordinator.
   */
  connectTimeoutMs?: number;
  /**
   * Started by `onelora launch` (env ONELORA_UNDER_LAUNCH=1): its set-up lines (backend, ZeroMQ
   * endpoint) go to debug, since the launcher's coordinator logs the group's backends once.
   */
  launched?: boolean;
}

export const DEFAULT_CONNECT_TIMEOUT_S = 300;

/** A coordinator that answers no heartbeat for this many heartbeat timeouts is lost: the worker exits. */
const LOST_AFTER_TIMEOUTS = 3;
/** distributed.heartbeat_timeout_s's default, until the job spec says otherwise. */
const DEFAULT_HEARTBEAT_TIMEOUT_MS = 30_000;

/** Runs until the coordinator says stop; throws a RunError when the job failed. */
export async function runWorker(opts: WorkerOptions): Promise<void> {
  if (!opts.token) throw new UserError(MISSING_TOKEN);
  const client = new CoordinatorClient(opts.coordinator, opts.token, { credentials: opts.credentials });
  const comm = zmqBackend({ token: opts.token, advertise: opts.advertise, coordinator: opts.coordinator, port: opts.zmqPort ?? 0, rank: opts.rank, curve: opts.curve });
  // A partition closes nothing: without this the Control stream (or a pending Register) would wait forever.
  let onLost!: (err: RunError) => void;
  const lost = new Promise<never>((_, reject) => (onLost = reject));
  const heartbeat = new HeartbeatThread({ coordinator: opts.coordinator, token: opts.token, tls: opts.tls ?? {}, intervalMs: opts.heartbeatMs ?? 1000, lostAfterMs: LOST_AFTER_TIMEOUTS * DEFAULT_HEARTBEAT_TIMEOUT_MS }, client,
    (err) => log.warn({ err: err.message }, 'heartbeat thread failed; beating from the main thread (it falls silent during long steps)'),
    (message) => log.warn({ err: message }, `heartbeats to ${opts.coordinator} are failing: ${message}`),
    (silentMs, message) => onLost(new RunError(`lost the coordinator at ${opts.coordinator}: no heartbeat answered for ${Math.round(silentMs / 1000)} s (${firstLine(message)}); this worker stops`)));
  try {
    await Promise.race([follow(opts, client, comm, heartbeat), lost]);
  } finally {
    await comm.onShutdown(true);
    await heartbeat.stop();
    client.close();
  }
}

/** Register, build the run, follow Control; again after each re-formation, until stop. */
async function follow(opts: WorkerOptions, client: CoordinatorClient, comm: CommBackend, heartbeat: HeartbeatThread): Promise<void> {
  const snapshots = new Map<number, Snapshot>();
  const best: StepContext['best'] = { value: null };
  let run: RunSetup | null = null;
  let initial: Snapshot | null = null;
  let rank = opts.rank;
  let generation = -1;
  // The backend is chosen before registering, so the coordinator can report what each rank runs on.
  const setupLevel = opts.launched ? 'debug' : 'info';
  const device = (await initBackend(opts.backend, { logLevel: setupLevel })).name;
  try {
    for (;;) {
      // The largest buffer peers send: the restore broadcast (values, m, v and the step counter).
      const endpoint = await comm.onStart(run ? 3 * run.engine.fused.size + 1 : undefined);
      if (!run) {
        const port = opts.zmqPort ? `--zmq-port ${opts.zmqPort}` : 'a free port: no --zmq-port given';
        const how = opts.advertise || endpoint.startsWith('tcp://127.') ? port : `${port}; the address this host reaches the coordinator from: no --advertise given`;
        log[setupLevel]({ endpoint }, `ZeroMQ endpoint ${endpoint} (${how})`);
        fault('kill-before-register', rank, 0);
      }
      const reply = await register(client, opts.coordinator, opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_S * 1000, { requested_rank: rank, zmq_endpoint: endpoint, hostname: os.hostname(), pid: process.pid, device: run?.backend.name ?? device, curve_public_key: comm.curvePublicKey });
      rank = reply.rank;
      generation = reply.generation;
      // Beat as a member from here: building the run and restoring its state can take longer than a heartbeat timeout.
      heartbeat.beat({ rank, generation: reply.generation, step: reply.resume?.step ?? 0 });
      const spec = decodeJobSpec(reply.job_spec_json);
      heartbeat.lostAfter(LOST_AFTER_TIMEOUTS * spec.config.distributed.heartbeat_timeout_s * 1000);
      if (!run) {
        // The heartbeat thread must be beating before the first step can hold the main thread.
        checkModelSizes(spec.output, spec.config);
        const [setup, onThread] = await Promise.all([setupRun(spec.config, { backend: opts.backend }), heartbeat.ready(30_000)]);
        if (!onThread) log.warn({ rank }, 'the heartbeat thread is not beating yet: beats come from the main thread, which falls silent during long steps');
        run = setup;
        initial = run.engine.snapshot();
      }
      const transport = await comm.onGroup(reply.rank, reply.peer_endpoints, reply.peer_curve_public_keys, spec.config.distributed.connect_timeout_s * 1000);
      log.info({ rank, world: reply.world_size, generation: reply.generation, step: reply.resume?.step }, `rank ${rank} of ${reply.world_size}, generation ${reply.generation}`);
      await restoreState(run, transport, reply, spec, snapshots, initial as Snapshot, best);
      const ctx: StepContext = { client, transport, run, spec, rank, generation: reply.generation, snapshots, best };
      const end = await followControl(ctx, comm, heartbeat);
      if (end.kind === 'restore') {
        log.warn({ rank, reason: end.reason }, `group abandoned: ${end.reason}`);
        await comm.onShutdown(true);
        continue;
      }
      await comm.onShutdown(end.failed);
      if (end.failed) throw new RunError(end.reason);
      return;
    }
  } catch (err) {
    // The model, data or a checkpoint this worker read is wrong (exit 2): the coordinator stops the
    // job at once with this message instead of waiting for a replacement that would read the same.
    if (err instanceof UserError && generation >= 0) {
      await client.reportFailure({ rank, generation, step: 0, late_rank: -1, message: messageOf(err), kind: 'config' }).catch(() => undefined);
    }
    throw err;
  } finally {
    await comm.onShutdown(true);
    run?.close();
  }
}

/**
 * Register, retried while the coordinator is unreachable (UNAVAILABLE: not started yet, or
 * restarting) with exponential backoff, 0.5 s doubling up to 30 s, for at most `connectTimeoutMs`
 * in all (as torchrun's rendezvous waits for its store).
 */
async function register(client: CoordinatorClient, address: string, connectTimeoutMs: number, req: Parameters<CoordinatorClient['register']>[0]): Promise<RegisterReply> {
  const giveUp = Date.now() + connectTimeoutMs;
  for (let attempt = 1, delay = 500; ; attempt++, delay = Math.min(2 * delay, 30_000)) {
    try {
      // Register answers once the whole group is there: wait as long as the coordinator lets a group form.
      return await client.register(req, 30 * 60_000);
    } catch (err) {
      const e = err as grpc.ServiceError;
      if (e.code === grpc.status.UNAUTHENTICATED) throw new UserError('the coordinator refused this worker\'s job token (ONELORA_JOB_TOKEN)');
      if (e.code === grpc.status.INVALID_ARGUMENT) throw new UserError(`the coordinator refused this worker: ${e.details}`, { cause: err });
      const left = giveUp - Date.now();
      if (e.code !== grpc.status.UNAVAILABLE || left <= 0) {
        const waited = e.code === grpc.status.UNAVAILABLE ? ` (retried for ${Math.round(connectTimeoutMs / 1000)} s: --connect-timeout)` : '';
        throw new RunError(`register with the coordinator at ${address} failed${waited}: ${messageOf(err)}`, { cause: err });
      }
      const wait = Math.min(delay, left);
      log.info({ attempt, next_delay_s: wait / 1000 }, `coordinator ${address} not reachable yet (${firstLine(e.details)}); retrying in ${(wait / 1000).toFixed(1)} s`);
      await sleep(wait);
    }
  }
}

const firstLine = (s: string | undefined): string => (s ?? '').split('. ')[0] ?? '';

const pack = (s: Snapshot): Float32Array => {
  const n = s.values.length;
  const buf = new Float32Array(3 * n + 1);
  buf.set(s.values, 0);
  buf.set(s.m, n);
  buf.set(s.v, 2 * n);
  buf[3 * n] = s.t;
  return buf;
};

/**
 * Brings this rank to the committed step of the reply: from a survivor's memory (broadcast as a sum
 * all-reduce in which every other rank contributes zeros, exact), from the checkpoint on disk, or
 * the initial state.
 */
async function restoreState(run: RunSetup, t: Transport, reply: RegisterReply, spec: JobSpec, snapshots: Map<number, Snapshot>, initial: Snapshot, best: StepContext['best']): Promise<void> {
  const step = reply.resume?.step ?? 0;
  const engine = run.engine;
  if (spec.restore_from === 'memory') {
    const n = engine.fused.size;
    const mine = snapshots.get(step);
    const source = spec.state_source_rank ?? 0;
    if (reply.rank === source && !mine) throw new RunError(`rank ${reply.rank}: asked to send the state of step ${step}, which it does not hold`);
    const buf = reply.rank === source ? pack(mine as Snapshot) : new Float32Array(3 * n + 1);
    await allReduceSum(t, buf, 0, { timeoutMs: spec.allreduce_timeout_ms, msPerMiB: spec.config.distributed.allreduce_s_per_mib * 1000, algorithm: 'direct' });
    engine.restore({ values: buf.subarray(0, n), m: buf.subarray(n, 2 * n), v: buf.subarray(2 * n, 3 * n), t: buf[3 * n]! });
  } else if (spec.restore_from === 'disk') {
    const dir = reply.resume?.checkpoint_dir ?? '';
    const ck = readCheckpoint(dir, reply.config_hash);
    engine.restoreByKey(ck.trainable, ck.m, ck.v, ck.state.optimizer_t, dir);
    best.value = ck.state.best ?? null;
  } else {
    engine.restore(initial);
  }
  snapshots.clear();
  snapshots.set(step, engine.snapshot());
}

type GroupEnd = { kind: 'restore'; reason: string } | { kind: 'stop'; failed: boolean; reason: string };

async function followControl(c: StepContext, comm: CommBackend, heartbeat: HeartbeatThread): Promise<GroupEnd> {
  const control = c.client.control({ rank: c.rank, generation: c.generation });
  heartbeat.beat({ rank: c.rank, generation: c.generation, step: 0 });
  let inFlight: Promise<void> = Promise.resolve();
  try {
    for await (const cmd of control) {
      if (cmd.kind === 'start') {
        heartbeat.beat({ rank: c.rank, generation: c.generation, step: cmd.start.step });
        inFlight = runStep(c, cmd.start).catch((err: unknown) => reportFailure(c, cmd.start.step, err));
      } else if (cmd.kind === 'restore') {
        // Unblock a step waiting on a dead peer, then re-register.
        await comm.onShutdown(true);
        await inFlight;
        return { kind: 'restore', reason: cmd.restore.reason };
      } else if (cmd.kind === 'stop') {
        // The job failed: a step waiting on a peer would otherwise hold this process until its all-reduce timeout.
        if (cmd.stop.failed) await comm.onShutdown(true);
        await inFlight;
        // Interrupted between checkpoints: rank 0 saves the last finished step before everyone exits.
        if (cmd.stop.checkpoint && c.rank === 0) await checkpointAtStop(c, cmd.stop.checkpoint);
        return { kind: 'stop', failed: cmd.stop.failed, reason: cmd.stop.reason };
      }
    }
    throw new RunError('the coordinator ended the control stream without a stop (is it gone?)');
  } finally {
    heartbeat.pause();
    control.cancel();
  }
}

/** What the coordinator's policy is told a failure was: a wrong input and a refused disk stop the job at once. */
const kindOf = (err: unknown): FailureReport['kind'] => (err instanceof DiskWriteError ? 'disk-write' : err instanceof UserError ? 'config' : '');

async function reportFailure(c: StepContext, step: number, err: unknown): Promise<void> {
  const late = err instanceof AllReduceTimeoutError ? err.lateRank : -1;
  log.warn({ rank: c.rank, step, late_rank: late }, messageOf(err));
  await c.client.reportFailure({ rank: c.rank, generation: c.generation, step, late_rank: late, message: messageOf(err), kind: kindOf(err) }).catch(() => undefined);
}

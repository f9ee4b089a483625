// The coordinator process (docs/architecture.md#processes): a gRPC server whose handlers only turn calls into events
// of the state machine (state.ts) and carry out the actions it returns; every decision is the
// reducer's. It owns the data (feed.ts) and the run outputs (outputs.ts); workers own the model and
// the in-memory committed state.
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { addCoordinatorService, bindServer, closeServer, refusal, type Ack, type CheckpointCommit, type Command, type CoordinatorHandlers, type MicroBatch, type RegisterReply, type RegisterRequest, type StepReport } from '../src/comm/proto.js';
import { RefusalLog } from '../src/comm/refusals.js';
import { configHash } from '../src/config/index.js';
import { Dataset } from '../src/data/arrow-file.js';
import { DiskWriteError, RunError, UserError } from '../src/errors.js';
import { childLog } from '../src/log.js';
import { interruptedAt, publishAdapter, recordConfig, resumePlan, openOutput, scheduleOf, type TrainSummary } from '../src/train/loop.js';
import type { Best } from '../src/train/metrics.js';
import { openDataset, totalSteps } from '../src/train/setup.js';
import { createTask } from '../src/train/tasks/index.js';
import { drawRunCurves } from '../src/watch/plot.js';
import { GroupHistory, type GroupSnapshot } from '../src/watch/dashboard-group.js';
import { DataFeed } from './feed.js';
import type { CoordinatorOptions } from './options.js';
import { JobOutputs, PromMetrics } from './outputs.js';
import { failurePolicyFor, type FailurePolicy } from './policy.js';
import { checkCommit, ControlSlots, curveMismatch, registerConflict, type PendingRegister } from './admission.js';
import { ackOf, backendsPhrase, failureEvent, groupFormedLine, groupReplies, timeoutEvent } from './group.js';
import { AsyncQueue } from './queue.js';
import { initialState, reduce, type CoordinatorAction, type CoordinatorEvent, type CoordinatorState, type Durable } from './state.js';

const log = childLog('coordinator');

export type { CoordinatorOptions };

export class Coordinator {
  port = 0;
  metricsPort: number | null = null;
  readonly done: Promise<TrainSummary>;
  /** A resume with nothing left to train: the run's own summary; start() then starts nothing. */
  readonly finished: TrainSummary | null = null;
  private state: CoordinatorState;
  private readonly server = new grpc.Server();
  private readonly feed: DataFeed;
  private readonly train: Dataset;
  private readonly prom = new PromMetrics();
  private readonly pending = new Map<string, PendingRegister>();
  private controls = new Map<number, AsyncQueue<Command>>();
  private readonly slots = new ControlSlots();
  /** Refused calls of token holders, counted and summarised (src/comm/refusals.ts). */
  private readonly refusals = new RefusalLog(log);
  private lastSeen: Record<number, number> = {};
  /** The best evaluation recorded in the checkpoint a --resume starts from. */
  private resumedBest: Best = null;
  private reports = new Map<number, StepReport>();
  /** Ranks the reducer decided to replace, until their process is restarted or the group re-forms. */
  private replacements = new Set<number>();
  /** Every worker identity (host/pid) the state machine took into a group being formed (bounded by the group sizes). */
  private readonly registered = new Set<string>();
  private readonly policy: FailurePolicy;
  private devices = new Map<number, string>();
  private loggedBackends = '';
  /** The dashboard's worker table and history (src/watch/dashboard-group.ts). */
  private readonly history = new GroupHistory();
  private outputs!: JobOutputs;
  private readonly t0 = performance.now();
  private stepStarted = performance.now();
  private waitingSince = Date.now();
  private timer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  private settle!: { resolve(s: TrainSummary): void; reject(e: Error): void };
  private readonly stopAt: number;
  private readonly total: number;
  readonly startStep: number;

  constructor(private readonly opts: CoordinatorOptions) {
    const { cfg } = opts;
    const point = openOutput(opts.output, cfg, { ...opts, flag: opts.resume && opts.resumeHint === undefined ? '--resume' : '--output' });
    this.train = openDataset(cfg, 'data.train');
    this.feed = new DataFeed(this.train, cfg, createTask(cfg, this.train, null));
    this.total = totalSteps(cfg, this.train.numRows);
    this.stopAt = Math.min(opts.maxSteps ?? cfg.max_steps ?? this.total, this.total);
    let durable: Durable | null = null;
    if (point) {
      const { dir, ck } = point;
      const plan = resumePlan(opts.output, { at: ck.state.step, total: this.total, maxSteps: opts.maxSteps, configMax: cfg.max_steps });
      this.stopAt = plan.stopAt;
      this.finished = plan.done;
      durable = { step: ck.state.step, samplesSeen: ck.state.samples_seen, path: dir };
      this.resumedBest = ck.state.best ?? null;
      log.info({ step: durable.step, checkpoint: dir }, `resuming from step ${durable.step}`);
    }
    this.policy = opts.policy ?? failurePolicyFor(cfg, opts.workers);
    this.state = initialState({ workers: opts.workers, totalSteps: this.stopAt, checkpointEvery: cfg.checkpoint.every }, durable);
    this.startStep = durable?.step ?? 0;
    this.done = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    this.done.catch(() => undefined);
  }

  /** Binds gRPC (and /metrics), writes config.yaml; resolves once workers can register. */
  async start(): Promise<void> {
    const { output, cfg } = this.opts;
    const finished = this.finished;
    if (finished) return this.shutdown().then(() => this.settle.resolve(finished));
    if (!this.opts.resume || this.startStep === 0) recordConfig(output, cfg);
    addCoordinatorService(this.server, this.opts.token, this.handlers());
    this.port = await bindServer(this.server, this.opts.bind ?? '127.0.0.1:29400', this.opts.credentials);
    // A taken port is exit 2 naming the flag; the gRPC server already bound must not keep the process alive.
    if (this.opts.metricsPort !== undefined) this.metricsPort = await this.prom.serve(this.opts.metricsPort).catch((err: unknown) => this.shutdown().then(() => Promise.reject(err as Error)));
    this.outputs = new JobOutputs(output, scheduleOf(cfg, this.stopAt), this.startStep, this.prom, { metric: cfg.eval.metric, best: this.resumedBest, quiet: this.opts.quiet, t0: this.t0, tensorboard: this.opts.tensorboard });
    this.timer = setInterval(() => this.tick(), 250);
    const stop = this.opts.signal;
    if (stop?.aborted) this.dispatch({ type: 'interrupted' });
    stop?.addEventListener('abort', () => this.dispatch({ type: 'interrupted' }), { once: true });
    log.info({ port: this.port, workers: this.opts.workers, stop_at: this.stopAt }, `coordinator listening on port ${this.port}, waiting for ${this.opts.workers} workers`);
  }

  /**
   * The launcher saw the process of `rank` exit. True when the reducer decided (now, or when the
   * loss was first noticed) to wait for a worker in its place: the launcher then restarts it.
   */
  workerExited(rank: number, detail: string, workerId?: string): boolean {
    const s = this.state;
    const forming = s.kind === 'waiting-for-workers' || s.kind === 'recovering';
    // A process that never registered (its id unseen) died while the group forms: that is a
    // failure of its own, not a second notice of a member already counted as lost.
    if (workerId !== undefined && forming && !this.registered.has(workerId)) {
      this.dispatch({ type: 'worker-exited', rank, generation: s.generation, detail, beforeRegistering: true });
    } else this.lost(rank, detail);
    return this.replacements.delete(rank);
  }

  /** The launcher saw the process of `rank` exit 2: an input it read is wrong; the job stops with exit 2 and `message`. */
  workerConfigError(rank: number, message: string): void {
    this.dispatch({ type: 'worker-config-error', rank, message });
  }

  private lost(rank: number, detail: string): void {
    if ('members' in this.state && this.state.members.some((m) => m.rank === rank)) {
      this.dispatch({ type: 'worker-exited', rank, generation: this.state.generation, detail });
    }
  }

  /** The worker table, generations and failures, for the dashboard. */
  groupSnapshot(): GroupSnapshot {
    return this.history.snapshot(this.state, this.lastSeen, this.devices);
  }

  get generation(): number {
    return this.state.generation;
  }

  private handlers(): CoordinatorHandlers {
    return {
      register: (req, peer) => this.onRegister(req, peer),
      heartbeat: (req) => {
        if (req.generation === this.state.generation) this.lastSeen[req.rank] = Date.now();
        return Promise.resolve({ generation: this.state.generation });
      },
      reportStep: (req) => {
        if (req.generation === this.state.generation && this.state.kind === 'running' && req.step === this.state.step) this.reports.set(req.rank, req);
        return Promise.resolve(this.ack(this.dispatch({ type: 'step-reported', rank: req.rank, generation: req.generation, step: req.step, samples: req.samples, loss: req.loss, nan: req.nan })));
      },
      reportFailure: (req) => {
        log.warn({ rank: req.rank, late_rank: req.late_rank, step: req.step }, req.message);
        return Promise.resolve(this.ack(this.dispatch(failureEvent(req))));
      },
      commitCheckpoint: (req, peer) => Promise.resolve(this.onCommit(req, peer)),
      batches: (req) => this.onBatches(req.rank, req.generation, req.step),
      control: (req, signal, peer) => this.onControl(req.rank, req.generation, signal, peer),
    };
  }

  /** Only rank 0's commit of the directory the coordinator names is applied (admission.ts). */
  private onCommit(req: CheckpointCommit, peer: string): Ack {
    const c = checkCommit(this.opts.output, configHash(this.opts.cfg), req);
    if (!c.ok) {
      this.refusals.refuse(`CommitCheckpoint refused: ${c.reason}`, peer, { step: req.step, detail: c.detail });
      return { ok: false, message: `${c.reason} (${c.detail})`, generation: this.state.generation };
    }
    return this.ack(this.dispatch({ type: 'checkpoint-committed', generation: req.generation, step: req.step, path: c.path, samplesSeen: c.samplesSeen }));
  }

  private onRegister(req: RegisterRequest, peer: string): Promise<RegisterReply> {
    const mixed = curveMismatch(!!this.opts.curve, req);
    if (mixed) {
      log.warn({ hostname: req.hostname, pid: req.pid }, `registration refused: ${mixed}`);
      return Promise.reject(new UserError(mixed));
    }
    // Stable across a process's re-registrations (each binds a fresh endpoint): the state machine
    // recognises survivors by it, and only a survivor can hand the committed state over from memory.
    const workerId = `${req.hostname}/${req.pid}`;
    const c = registerConflict(req, workerId, this.state, this.pending, this.opts.admit);
    if (c) {
      this.refusals.refuse(`Register refused: ${c.reason}`, peer, { worker: workerId, detail: c.detail });
      return Promise.reject(refusal(c.code, `registration refused: ${c.reason} (${c.detail})`));
    }
    const same = this.pending.get(workerId);
    // The same call again (a retry): it waits for the same group and gets the same reply.
    if (same) return new Promise<RegisterReply>((resolve, reject) => same.waiters.push({ resolve, reject }));
    return new Promise<RegisterReply>((resolve, reject) => {
      this.pending.set(workerId, { req, peer, waiters: [{ resolve, reject }] });
      const acts = this.dispatch({ type: 'worker-registered', workerId, requestedRank: req.requested_rank, endpoint: req.zmq_endpoint });
      const ignored = acts.find((a) => a.type === 'ignored');
      if (ignored && ignored.type === 'ignored') {
        this.pending.delete(workerId);
        reject(new RunError(`registration refused: ${ignored.reason}`));
      } else this.registered.add(workerId);
    });
  }

  private async *onBatches(rank: number, generation: number, stepNo: number): AsyncIterable<MicroBatch> {
    const s = this.state;
    if (s.kind !== 'running' || s.generation !== generation || s.step !== stepNo) {
      throw new RunError(`no batches for rank ${rank} step ${stepNo} generation ${generation} (coordinator is ${s.kind}, step ${'step' in s ? s.step : '-'}, generation ${s.generation})`);
    }
    yield* this.feed.batches(stepNo, s.committed.samplesSeen, s.members.length).perRank[rank] ?? [];
  }

  private onControl(rank: number, generation: number, signal: AbortSignal, peer: string): AsyncIterable<Command> {
    const q = this.controls.get(rank);
    if (!q || generation !== this.state.generation) {
      const empty = new AsyncQueue<Command>();
      empty.push({ generation: this.state.generation, kind: 'restore', restore: { reason: `generation ${generation} is gone`, resume: null } });
      empty.end();
      return empty;
    }
    // One consumer per queue: a second stream would take the rank's commands (its wake-up) away.
    const why = this.slots.claim(rank, peer, signal);
    if (why) {
      this.refusals.refuse(`Control stream refused: ${why}`, peer, { rank });
      throw refusal(grpc.status.ALREADY_EXISTS, `Control stream refused: ${why}`);
    }
    this.lastSeen[rank] = Date.now();
    // A closed stream is a dead worker (or a stale one re-registering), but expected after a Stop.
    signal.addEventListener('abort', () => this.state.interrupt !== 'stopping' && this.lost(rank, 'its control stream closed'), { once: true });
    return q;
  }

  private tick(): void {
    const d = this.opts.cfg.distributed;
    const timeouts = { heartbeatMs: this.opts.heartbeatTimeoutMs ?? d.heartbeat_timeout_s * 1000, formMs: this.opts.formTimeoutMs ?? d.form_timeout_s * 1000 };
    const event = timeoutEvent(this.state, this.lastSeen, this.waitingSince, timeouts, Date.now());
    if (event) this.dispatch(event);
  }

  private ack(actions: CoordinatorAction[]): Ack {
    return ackOf(actions, this.state.generation);
  }

  private dispatch(event: CoordinatorEvent): CoordinatorAction[] {
    const t = reduce(this.state, event, this.policy);
    this.history.observe(event, t.actions, this.state.generation);
    this.state = t.state;
    for (const a of t.actions) {
      try {
        this.execute(a);
      } catch (err) {
        if (!(err instanceof DiskWriteError)) throw err;
        // Our own run file (metrics.jsonl, summary.json, adapter/) hit a full or read-only disk: the job stops as for a refused checkpoint.
        this.diskFailed(err);
        break;
      }
    }
    return t.actions;
  }

  private diskFailed(err: DiskWriteError): void {
    const s = this.state;
    // Finishing (summary.json, adapter/): nothing is left for the reducer to decide.
    if (s.kind !== 'done' && s.kind !== 'failed') return void this.dispatch({ type: 'disk-write-failed', source: 'coordinator', generation: s.generation, step: 'step' in s ? s.step : s.committed.step, message: err.message });
    log.error(err.message);
    void this.shutdown().then(() => this.settle.reject(err));
  }

  private stepCompleted(a: Extract<CoordinatorAction, { type: 'step-completed' }>): void {
    const reports = [...this.reports.values()];
    this.history.stepped(a.step, reports);
    this.outputs.step({
      step: a.step, reports, globalUnits: this.feed.batches(a.step, a.samplesSeen, a.worldSize).globalUnits,
      samples: reports.reduce((n, r) => n + r.samples, 0), stepSeconds: (performance.now() - this.stepStarted) / 1000,
      causalLm: this.opts.cfg.task === 'causal-lm',
    });
    this.prom.samples.set(a.committed.samplesSeen);
  }

  private broadcast(cmd: Command, end = false): void {
    for (const q of this.controls.values()) {
      q.push(cmd);
      if (end) q.end();
    }
  }

  private execute(a: CoordinatorAction): void {
    switch (a.type) {
      case 'ignored':
        log.debug({ reason: a.reason }, 'event ignored');
        return;
      case 'form-group':
        return this.formGroup(a);
      case 'start-step':
        this.reports.clear();
        this.stepStarted = performance.now();
        return this.broadcast({ generation: a.generation, kind: 'start', start: { step: a.step, samples_seen: a.samplesSeen, checkpoint: a.checkpoint } });
      case 'abort-step':
        return this.broadcast({ generation: a.generation, kind: 'abort', abort: { step: a.step, reason: a.reason } });
      case 'restore': {
        log.warn({ generation: a.generation }, a.reason);
        this.prom.failures.inc();
        this.broadcast({ generation: a.generation, kind: 'restore', restore: { reason: a.reason, resume: { step: a.committed.step, samples_seen: a.committed.samplesSeen, epoch: 0, checkpoint_dir: '' } } }, true);
        this.controls = new Map();
        this.lastSeen = {};
        this.waitingSince = Date.now();
        return;
      }
      case 'step-completed':
        return this.stepCompleted(a);
      case 'replace-worker':
        this.replacements.add(a.rank);
        return;
      case 'finish':
        return this.finish(a);
      case 'fail':
        return this.fail(a.message, a.exitCode);
      case 'stop-with-checkpoint':
        return this.broadcast({ generation: a.generation, kind: 'stop', stop: { reason: 'interrupted', failed: false, checkpoint: { step: a.committed.step, samples_seen: a.committed.samplesSeen, epoch: 0, checkpoint_dir: '' } } }, true);
      case 'interrupt':
        return this.interrupted(a.durable);
    }
  }

  private formGroup(a: Extract<CoordinatorAction, { type: 'form-group' }>): void {
    const curveKeys = a.members.map((m) => this.pending.get(m.workerId)?.req.curve_public_key ?? '');
    const replies = groupReplies(a, { cfg: this.opts.cfg, output: path.resolve(this.opts.output), stopAt: this.stopAt }, curveKeys);
    // Whoever was to be replaced has been, or the group formed without it.
    this.replacements.clear();
    this.controls = new Map(a.members.map((m) => [m.rank, new AsyncQueue<Command>()]));
    this.slots.reset(new Map(a.members.map((m) => [m.rank, this.pending.get(m.workerId)?.peer ?? ''])));
    const now = Date.now();
    this.lastSeen = Object.fromEntries(a.members.map((m) => [m.rank, now]));
    for (const m of a.members) {
      const p = this.pending.get(m.workerId);
      this.pending.delete(m.workerId);
      if (p) this.devices.set(m.rank, p.req.device);
      for (const w of p?.waiters ?? []) w.resolve(replies.get(m.rank)!);
    }
    this.prom.workers.set(a.members.length);
    this.prom.generation.set(a.generation);
    log.info(...groupFormedLine(a));
    // The group's backends once (and again only should they change): workers under launch log theirs at debug.
    const devices = a.members.map((m) => this.devices.get(m.rank) ?? '?');
    const backends = backendsPhrase(a.members.map((m) => m.rank), devices);
    if (backends !== this.loggedBackends) log.info({ backends: devices }, `backend ${(this.loggedBackends = backends)}`);
  }

  private finish(a: Extract<CoordinatorAction, { type: 'finish' }>): void {
    this.broadcast({ generation: this.state.generation, kind: 'stop', stop: { reason: 'done', failed: false } }, true);
    const record = this.outputs.record;
    this.outputs.close();
    if (a.durable && a.durable.step === this.stopAt) publishAdapter(this.opts.output, a.durable.path);
    const r0 = [...this.reports.values()].find((r) => r.rank === 0)?.metrics ?? {};
    const summary = record.summary({
      cfg: this.opts.cfg, steps: a.step, totalSteps: this.total, trainable: r0.trainable ?? 0, head: r0.head ?? 0,
      backend: `${this.devices.get(0) ?? '?'} × ${a.worldSize} workers`,
    });
    log.info({ steps: summary.steps, final_loss: summary.final_loss }, 'done');
    void Promise.all([this.shutdown(), drawRunCurves(this.opts.output)]).then(() => this.settle.resolve(summary));
  }

  private fail(message: string, exitCode: 1 | 2): void {
    log.error(message);
    this.stopJob(message, true, exitCode === 2 ? new UserError(message) : new RunError(message));
  }

  private interrupted(durable: Durable | null): void {
    this.stopJob('interrupted', false, interruptedAt(durable?.step ?? 0, this.stopAt, durable?.path ?? null));
  }

  /** Stops every worker and every waiting Register, closes the outputs and ends the job with `err`. */
  private stopJob(reason: string, failed: boolean, err: Error): void {
    this.broadcast({ generation: this.state.generation, kind: 'stop', stop: { reason, failed } }, true);
    const refused = new RunError(failed ? reason : 'the run was interrupted');
    for (const p of this.pending.values()) for (const w of p.waiters) w.reject(refused);
    this.pending.clear();
    this.outputs.close();
    void this.shutdown().then(() => this.settle.reject(err));
  }

  /** Lets the workers read their Stop, then closes the server (forcibly after 5 s). Idempotent. */
  shutdown(): Promise<void> {
    this.closing ??= this.close();
    return this.closing;
  }

  private async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await closeServer(this.server, 5000);
    this.prom.close();
    this.refusals.close();
    this.train.close();
  }
}


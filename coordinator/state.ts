// The coordinator as a state machine (docs/internals.md#coordinator-as-a-state-machine): a discriminated union of states and one
// pure reduce(state, event, policy) → { state, actions }. The gRPC handlers and timers turn calls
// into events and carry out the actions; nothing here touches a socket, a clock or a file. Every
// decision is taken here: when a step completes, which steps are checkpointed (src/train/loop.ts's
// rule, the single process's), what a failure means (the injected FailurePolicy), and that a
// commit arriving before its step completed is held until it does.
//
//   waiting-for-workers → running ⇄ checkpointing → done
//                            ↘ recovering ↗   (any state but done → failed)
//
// Data position is one global sample counter (`samplesSeen`); the data layer owns the permutation.
// Every re-formation of the group increments `generation`, and events from an older generation
// are ignored, so a late report from a dead group cannot move the run.
import { checkpointDue } from '../src/train/loop.js';
import type { Failure, FailurePolicy } from './policy.js';

export interface JobParams {
  /** The world size the run is configured for (`--workers`). */
  workers: number;
  /** The last optimizer step (inclusive); steps are numbered from 1. */
  totalSteps: number;
  /** Write a disk checkpoint every this many steps (the final step always). */
  checkpointEvery: number;
}

/** State every worker holds in memory after each finished step (the trainable state is a few MB). */
export interface Committed {
  step: number;
  samplesSeen: number;
}

/** The last checkpoint on disk. */
export interface Durable extends Committed {
  path: string;
}

export interface Member {
  workerId: string;
  rank: number;
  endpoint: string;
}

interface Common {
  params: JobParams;
  generation: number;
  failures: number;
  committed: Committed;
  durable: Durable | null;
  /**
   * Ctrl-C: 'pending' until the step in flight ends; 'stopping' once the workers were told to stop
   * and rank 0 to checkpoint the last finished step (the others leaving then is no failure).
   */
  interrupt: 'pending' | 'stopping' | null;
}

export interface StepTally {
  samples: number;
  loss: number;
}

export type CoordinatorState =
  | (Common & { kind: 'waiting-for-workers'; expected: number; members: readonly Member[] })
  | (Common & {
      kind: 'running';
      members: readonly Member[];
      step: number;
      reports: Readonly<Record<number, StepTally>>;
      /** Rank 0's checkpoint of this step, committed before every rank had reported it: applied when the step completes. */
      held: Durable | null;
    })
  | (Common & { kind: 'checkpointing'; members: readonly Member[]; step: number })
  | (Common & {
      kind: 'recovering';
      expected: number;
      members: readonly Member[];
      reason: string;
      /** Workers of the failed group that are still alive: they hold `committed` in memory. */
      survivors: readonly string[];
    })
  | (Common & { kind: 'done' })
  | (Common & { kind: 'failed'; message: string; exitCode: 1 | 2 });

export type CoordinatorEvent =
  /** A worker called Register; requestedRank -1 when it has none. */
  | { type: 'worker-registered'; workerId: string; requestedRank: number; endpoint: string }
  | { type: 'heartbeat'; rank: number; generation: number }
  | { type: 'heartbeat-timeout'; rank: number; generation: number; silentMs: number }
  /** `beforeRegistering`: the process never called Register (the launcher saw it die). */
  | { type: 'worker-exited'; rank: number; generation: number; detail: string; beforeRegistering?: boolean }
  | { type: 'step-reported'; rank: number; generation: number; step: number; samples: number; loss: number; nan: boolean }
  | { type: 'checkpoint-committed'; generation: number; step: number; path: string; samplesSeen: number }
  | { type: 'allreduce-failed'; rank: number; generation: number; step: number; lateRank: number; message: string }
  /**
   * A worker found a config, model or data file wrong (it exited 2, or reported it before exiting).
   * No generation: a wrong input stays wrong whichever group reads it.
   */
  | { type: 'worker-config-error'; rank: number; message: string }
  /**
   * A run file could not be written to the output disk (full, read-only): rank 0's checkpoint, or
   * the coordinator's own metrics.jsonl, summary.json or adapter/. `source` says who ('rank 0',
   * 'coordinator'); `message` names the file.
   */
  | { type: 'disk-write-failed'; source: string; generation: number; step: number; message: string }
  /** Recovery waited too long for registrations. */
  | { type: 'recovery-timeout'; waitedMs: number }
  /** SIGINT/SIGTERM: stop at the next step boundary, with a checkpoint of the last finished step. */
  | { type: 'interrupted' };

export type CoordinatorAction =
  /**
   * Answer every pending Register: the group is complete. `restoreFrom` says where the state of
   * step `resume.step` comes from: 'memory' — rank `stateSourceRank` (a survivor) broadcasts its
   * in-memory state to the group; 'disk' — everyone loads `durable`; 'fresh' — a new run.
   */
  | {
      type: 'form-group';
      generation: number;
      members: readonly Member[];
      resume: Committed;
      restoreFrom: 'memory' | 'disk' | 'fresh';
      stateSourceRank: number | null;
      durable: Durable | null;
    }
  | { type: 'start-step'; generation: number; step: number; samplesSeen: number; checkpoint: boolean }
  /**
   * Every rank reported step `step`, whose global batch started at sample `samplesSeen` and was
   * dealt over `worldSize` ranks: it is committed (the run outputs record it). `checkpoint`: rank 0
   * writes it, and the next step waits for the commit.
   */
  | { type: 'step-completed'; generation: number; step: number; samplesSeen: number; worldSize: number; committed: Committed; checkpoint: boolean }
  | { type: 'abort-step'; generation: number; step: number; reason: string }
  /** Tell the live workers to drop the step in flight, keep `committed` and re-register (proto Restore). */
  | { type: 'restore'; generation: number; committed: Committed; durable: Durable | null; reason: string }
  /** The policy decided to wait for a worker in place of rank `rank`: whoever supervises its process (the launcher) restarts it. */
  | { type: 'replace-worker'; generation: number; rank: number }
  | { type: 'finish'; step: number; durable: Durable | null; worldSize: number }
  /** Interrupted: every worker stops; rank 0 first writes step `committed.step` as a checkpoint and commits it. */
  | { type: 'stop-with-checkpoint'; generation: number; committed: Committed }
  /** Interrupted: the run ends unfinished; it resumes from `durable`. */
  | { type: 'interrupt'; durable: Durable | null }
  /** The run failed: exit 2 when an input the user supplied is wrong, else 1. */
  | { type: 'fail'; message: string; exitCode: 1 | 2 }
  /** The event changed nothing; `reason` is for the log and the RPC's Ack. */
  | { type: 'ignored'; reason: string };

export interface Transition {
  state: CoordinatorState;
  actions: CoordinatorAction[];
}

export function initialState(params: JobParams, resume: Durable | null = null): CoordinatorState {
  const committed = resume ? { step: resume.step, samplesSeen: resume.samplesSeen } : { step: 0, samplesSeen: 0 };
  return { kind: 'waiting-for-workers', params, generation: 1, failures: 0, committed, durable: resume, interrupt: null, expected: params.workers, members: [] };
}

const ignore = (state: CoordinatorState, reason: string): Transition => ({ state, actions: [{ type: 'ignored', reason }] });

function common(s: CoordinatorState): Common {
  return { params: s.params, generation: s.generation, failures: s.failures, committed: s.committed, durable: s.durable, interrupt: s.interrupt };
}

export function reduce(state: CoordinatorState, event: CoordinatorEvent, policy: FailurePolicy): Transition {
  if (state.kind === 'done' || state.kind === 'failed') return ignore(state, `${event.type} after the run ended (${state.kind})`);
  if ('generation' in event && event.generation !== state.generation) {
    return ignore(state, `${event.type} from stale generation ${event.generation} (current ${state.generation})`);
  }
  switch (event.type) {
    case 'worker-registered':
      return state.kind === 'waiting-for-workers' || state.kind === 'recovering'
        ? register(state, event)
        : ignore(state, `worker ${event.workerId} registered while ${state.kind}: the group is formed`);
    case 'heartbeat':
      return { state, actions: [] };
    case 'step-reported':
      return onReport(state, event);
    case 'checkpoint-committed':
      return onCommitted(state, event);
    case 'recovery-timeout':
      if (state.kind !== 'recovering' && state.kind !== 'waiting-for-workers') return ignore(state, 'recovery timeout while not waiting');
      return fail(state, `only ${state.members.length} of ${state.expected} workers registered within ${Math.round(event.waitedMs / 1000)} s`);
    case 'heartbeat-timeout':
      return onFailure(state, { kind: 'heartbeat-timeout', rank: event.rank, message: `rank ${event.rank} sent no heartbeat for ${Math.round(event.silentMs / 1000)} s` }, policy);
    case 'worker-exited':
      return onFailure(state, { kind: 'worker-exited', rank: event.rank, message: `rank ${event.rank} exited (${event.detail})`, beforeRegistering: event.beforeRegistering }, policy);
    case 'interrupted':
      if (state.interrupt) return ignore(state, 'interrupted again: already stopping');
      // No step in flight while a group forms: stop now, resuming from the disk.
      if (state.kind === 'waiting-for-workers' || state.kind === 'recovering') return interrupted(state);
      return { state: { ...state, interrupt: 'pending' }, actions: [] };
    case 'allreduce-failed':
      return onFailure(state, { kind: 'allreduce-failed', rank: event.lateRank, message: `rank ${event.rank}: ${event.message}` }, policy);
    case 'worker-config-error':
      return onFatal(state, { kind: 'config-error', rank: event.rank, message: `rank ${event.rank}: ${event.message}` }, policy);
    case 'disk-write-failed':
      return onFatal(state, { kind: 'disk-write', rank: -1, message: `step ${event.step}: ${event.source}: ${event.message}; the last complete checkpoint (${state.durable?.path ?? 'none yet'}) is the resume point` }, policy);
  }
}

type Waiting = Extract<CoordinatorState, { kind: 'waiting-for-workers' | 'recovering' }>;

function register(state: Waiting, ev: Extract<CoordinatorEvent, { type: 'worker-registered' }>): Transition {
  if (state.members.some((m) => m.workerId === ev.workerId)) return ignore(state, `worker ${ev.workerId} registered twice`);
  if (state.members.length >= state.expected) return ignore(state, `worker ${ev.workerId} is surplus: the group of ${state.expected} is full`);
  const taken = new Set(state.members.map((m) => m.rank));
  let rank = ev.requestedRank;
  if (rank < 0 || rank >= state.expected || taken.has(rank)) {
    // A requested rank that no longer exists (a smaller group) or is taken gets the lowest free one.
    rank = 0;
    while (taken.has(rank)) rank++;
  }
  const members = [...state.members, { workerId: ev.workerId, rank, endpoint: ev.endpoint }];
  if (members.length < state.expected) return { state: { ...state, members }, actions: [] };
  return startGroup({ ...state, members }, []);
}

function startGroup(state: Waiting, actions: CoordinatorAction[]): Transition {
  const members = [...state.members].sort((a, b) => a.rank - b.rank);
  let c = common(state);
  let restoreFrom: 'memory' | 'disk' | 'fresh' = c.committed.step > 0 ? 'disk' : 'fresh';
  let stateSourceRank: number | null = null;
  if (state.kind === 'recovering') {
    const source = members.find((m) => state.survivors.includes(m.workerId));
    if (source) {
      restoreFrom = 'memory';
      stateSourceRank = source.rank;
    } else {
      // Only newcomers: the last finished step died with the old group; fall back to the disk.
      const d = c.durable;
      c = { ...c, committed: d ? { step: d.step, samplesSeen: d.samplesSeen } : { step: 0, samplesSeen: 0 } };
      restoreFrom = d ? 'disk' : 'fresh';
    }
  }
  actions.push({ type: 'form-group', generation: c.generation, members, resume: c.committed, restoreFrom, stateSourceRank, durable: c.durable });
  if (c.committed.step >= c.params.totalSteps) {
    actions.push({ type: 'finish', step: c.committed.step, durable: c.durable, worldSize: members.length });
    return { state: { ...c, kind: 'done' }, actions };
  }
  return startStep({ ...c, kind: 'running', members, step: c.committed.step + 1, reports: {}, held: null }, actions);
}

const due = (p: JobParams, step: number): boolean => checkpointDue(step, { stopAt: p.totalSteps, checkpointEvery: p.checkpointEvery });

function startStep(state: Extract<CoordinatorState, { kind: 'running' }>, actions: CoordinatorAction[]): Transition {
  if (state.interrupt) {
    // A step boundary: stop here, after checkpointing the last finished step unless it is on disk.
    const c = state.committed;
    if (c.step === 0 || state.durable?.step === c.step) return interrupted(state, actions);
    actions.push({ type: 'stop-with-checkpoint', generation: state.generation, committed: c });
    return { state: { ...common(state), interrupt: 'stopping', kind: 'checkpointing', members: state.members, step: c.step }, actions };
  }
  actions.push({
    type: 'start-step',
    generation: state.generation,
    step: state.step,
    samplesSeen: state.committed.samplesSeen,
    checkpoint: due(state.params, state.step),
  });
  return { state, actions };
}

function onReport(state: CoordinatorState, ev: Extract<CoordinatorEvent, { type: 'step-reported' }>): Transition {
  if (state.kind !== 'running') return ignore(state, `step report while ${state.kind}`);
  if (ev.step !== state.step) return ignore(state, `report for step ${ev.step} during step ${state.step}`);
  if (!state.members.some((m) => m.rank === ev.rank)) return ignore(state, `report from rank ${ev.rank}, not in the group`);
  if (ev.nan || !Number.isFinite(ev.loss)) {
    const message = `step ${ev.step}: rank ${ev.rank} reported a non-finite loss or gradient (NaN/Inf); stopping`;
    const t = fail(state, message);
    t.actions.unshift({ type: 'abort-step', generation: state.generation, step: state.step, reason: message });
    return t;
  }
  if (state.reports[ev.rank]) return ignore(state, `rank ${ev.rank} reported step ${ev.step} twice`);
  const reports = { ...state.reports, [ev.rank]: { samples: ev.samples, loss: ev.loss } };
  if (Object.keys(reports).length < state.members.length) return { state: { ...state, reports }, actions: [] };

  const samples = Object.values(reports).reduce((a, r) => a + r.samples, 0);
  const committed = { step: state.step, samplesSeen: state.committed.samplesSeen + samples };
  const checkpoint = due(state.params, state.step);
  const completed: CoordinatorAction = {
    type: 'step-completed', generation: state.generation, step: state.step, samplesSeen: state.committed.samplesSeen, worldSize: state.members.length, committed, checkpoint,
  };
  if (checkpoint) {
    const next: Checkpointing = { ...common(state), committed, kind: 'checkpointing', members: state.members, step: state.step };
    return state.held ? applyCommit(next, state.held, [completed]) : { state: next, actions: [completed] };
  }
  return startStep({ ...state, committed, step: state.step + 1, reports: {}, held: null }, [completed]);
}

type Checkpointing = Extract<CoordinatorState, { kind: 'checkpointing' }>;

function onCommitted(state: CoordinatorState, ev: Extract<CoordinatorEvent, { type: 'checkpoint-committed' }>): Transition {
  const durable: Durable = { step: ev.step, samplesSeen: ev.samplesSeen, path: ev.path };
  // Rank 0 reports, then writes and commits; the other ranks' reports may still be on their way.
  if (state.kind === 'running' && ev.step === state.step && due(state.params, state.step)) return { state: { ...state, held: durable }, actions: [] };
  if (state.kind !== 'checkpointing' || ev.step !== state.step) return ignore(state, `checkpoint of step ${ev.step} committed while ${state.kind}`);
  return applyCommit(state, durable, []);
}

function applyCommit(state: Checkpointing, durable: Durable, actions: CoordinatorAction[]): Transition {
  if (durable.step >= state.params.totalSteps) {
    actions.push({ type: 'finish', step: durable.step, durable, worldSize: state.members.length });
    return { state: { ...common(state), durable, kind: 'done' }, actions };
  }
  return startStep({ ...common(state), durable, kind: 'running', members: state.members, step: durable.step + 1, reports: {}, held: null }, actions);
}

function interrupted(state: CoordinatorState, actions: CoordinatorAction[] = []): Transition {
  actions.push({ type: 'interrupt', durable: state.durable });
  return { state: { ...common(state), kind: 'done' }, actions };
}

function fail(state: CoordinatorState, message: string, exitCode: 1 | 2 = 1): Transition {
  return { state: { ...common(state), kind: 'failed', message, exitCode }, actions: [{ type: 'fail', message, exitCode }] };
}

/**
 * A failure the policy may rule fatal (config-error, disk-write): the job stops now, between
 * steps, with no restart and no wait for a group; a policy that tolerates it treats it as a lost worker.
 */
function onFatal(state: CoordinatorState, failure: Failure, p: FailurePolicy): Transition {
  const members = 'members' in state ? state.members : [];
  const ctx = { failures: state.failures + 1, worldSize: members.length, liveWorkers: members.length - 1 };
  if (p.decide(failure, ctx) !== 'fail') return onFailure(state, failure, p);
  const t = fail({ ...state, failures: ctx.failures }, p.explain(failure, ctx), failure.kind === 'config-error' ? 2 : 1);
  if (state.kind === 'running' || state.kind === 'checkpointing') t.actions.unshift({ type: 'abort-step', generation: state.generation, step: state.step, reason: failure.message });
  return t;
}

function onFailure(state: CoordinatorState, failure: Failure, p: FailurePolicy): Transition {
  const members = 'members' in state ? state.members : [];
  if (state.interrupt === 'stopping' && failure.rank !== 0) return ignore(state, `${failure.message}: the run is stopping`);
  // Stopping anyway: no restart; the run resumes from its last checkpoint on disk.
  if (state.interrupt) return interrupted(state, state.kind === 'running' || state.kind === 'checkpointing' ? [{ type: 'abort-step', generation: state.generation, step: state.step, reason: failure.message }] : []);
  if (state.kind === 'waiting-for-workers' || state.kind === 'recovering') {
    // A registered worker of the group being formed died: unless the policy gives up, the group
    // still waits for `expected` workers, so one must take its place.
    const left = members.filter((m) => m.rank !== failure.rank);
    // A process that exits before it registered (the launcher saw it) is a failure too: the group
    // waits for `expected` workers, so without a replacement it would wait until the form timeout.
    if (left.length === members.length && !failure.beforeRegistering) return ignore(state, `${failure.message}: not a member of the group being formed`);
    const ctx = { failures: state.failures + 1, worldSize: state.expected, liveWorkers: left.length };
    if (p.decide(failure, ctx) === 'fail') return fail(state, p.explain(failure, ctx));
    return { state: { ...state, failures: ctx.failures, members: left }, actions: [{ type: 'replace-worker', generation: state.generation, rank: failure.rank }] };
  }
  const worldSize = members.length;
  const ctx = { failures: state.failures + 1, worldSize, liveWorkers: worldSize - 1 };
  const decision = p.decide(failure, ctx);
  const inFlight = state.kind === 'running' || state.kind === 'checkpointing' ? state.step : state.committed.step;
  const abort: CoordinatorAction = { type: 'abort-step', generation: state.generation, step: inFlight, reason: failure.message };
  if (decision === 'fail') {
    const t = fail({ ...state, failures: ctx.failures }, `step ${inFlight}: ${p.explain(failure, ctx)}`);
    t.actions.unshift(abort);
    return t;
  }
  const generation = state.generation + 1;
  const expected = decision === 'continue-with-fewer' ? worldSize - 1 : state.params.workers;
  const survivors = members.filter((m) => m.rank !== failure.rank).map((m) => m.workerId);
  const reason = `${failure.message}; ${decision} from step ${state.committed.step}`;
  const next: CoordinatorState = { ...common(state), failures: ctx.failures, generation, kind: 'recovering', expected, members: [], reason, survivors };
  const actions: CoordinatorAction[] = [abort, { type: 'restore', generation, committed: state.committed, durable: state.durable, reason }];
  if (decision === 'restart') actions.push({ type: 'replace-worker', generation, rank: failure.rank });
  return { state: next, actions };
}

/** Ranks whose last heartbeat is older than `timeoutMs` at `nowMs`, the longest silent first. */
export function lateRanks(lastSeenMs: Readonly<Record<number, number>>, nowMs: number, timeoutMs: number): { rank: number; silentMs: number }[] {
  return Object.entries(lastSeenMs)
    .map(([rank, seen]) => ({ rank: Number(rank), silentMs: nowMs - seen }))
    .filter((r) => r.silentMs > timeoutMs)
    .sort((a, b) => b.silentMs - a.silentMs || a.rank - b.rank);
}

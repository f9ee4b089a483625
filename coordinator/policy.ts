// What to do when a worker is lost (docs/internals.md#coordinator-as-a-state-machine): a policy returns a decision, the state machine
// acts on it. After Ray Train's FailurePolicy.make_decision: a retry budget (max_failures) and a
// floor on the group size (min_workers), docs/config.md `distributed`. A job builds its policy once
// (failurePolicyFor) and hands it to the coordinator, which passes it to every reduce call; the
// launcher restarts a worker process only when a decision here says restart.
import type { RunConfig } from '../src/config/index.js';

export type FailureKind = 'worker-exited' | 'heartbeat-timeout' | 'allreduce-failed' | 'config-error' | 'disk-write';

/**
 * Failures no restart can mend, so the job stops at once whatever the budget: a worker that exited
 * 2 (a config, model or data file it reads is wrong: its replacement would read the same) and a
 * checkpoint the output disk refused (full or read-only: a restarted worker meets the same disk).
 */
const FATAL: ReadonlySet<FailureKind> = new Set(['config-error', 'disk-write']);

export interface Failure {
  kind: FailureKind;
  /** The rank lost or suspected (for an all-reduce failure: the peer that was waited for). */
  rank: number;
  message: string;
  /** The process died before it registered (so it was no member of any group). */
  beforeRegistering?: boolean;
}

export interface FailureContext {
  /** Failures so far in this run, this one included. */
  failures: number;
  /** Size of the group the failure happened in. */
  worldSize: number;
  /** Workers still alive in that group (worldSize - 1 for one lost worker). */
  liveWorkers: number;
}

/**
 * - `restart`: wait until a restarted or replacement worker has registered, re-form the group at
 *   the same world size, continue from the committed state.
 * - `continue-with-fewer`: re-form with the live workers only (the global batch stays the same,
 *   docs/architecture.md#contracts), continue from the committed state.
 * - `fail`: stop the run with a message.
 */
export type FailureDecision = 'restart' | 'continue-with-fewer' | 'fail';

export interface FailurePolicyConfig {
  /** Failures tolerated over the whole run; one more fails it (`--max-failures`, default 3). */
  maxFailures: number;
  /** The smallest group worth continuing with (`--min-workers`, default: all workers). */
  minWorkers: number;
}

export interface FailurePolicy {
  decide(failure: Failure, ctx: FailureContext): FailureDecision;
  /** Why the last `fail` decision was taken, for the run's error message. */
  explain(failure: Failure, ctx: FailureContext): string;
}

/**
 * The default: over budget → fail; when min_workers is below the world size and the live workers
 * are enough, continue with fewer (no waiting on a replacement); otherwise restart and wait for one.
 */
export function makeFailurePolicy(cfg: FailurePolicyConfig): FailurePolicy {
  if (!Number.isInteger(cfg.maxFailures) || cfg.maxFailures < 0) throw new RangeError(`max_failures must be an integer ≥ 0, got ${cfg.maxFailures}`);
  if (!Number.isInteger(cfg.minWorkers) || cfg.minWorkers < 1) throw new RangeError(`min_workers must be an integer ≥ 1, got ${cfg.minWorkers}`);
  const decide = (f: Failure, ctx: FailureContext): FailureDecision => {
    if (FATAL.has(f.kind) || ctx.failures > cfg.maxFailures) return 'fail';
    if (cfg.minWorkers < ctx.worldSize) return ctx.liveWorkers >= cfg.minWorkers ? 'continue-with-fewer' : 'restart';
    return 'restart';
  };
  return {
    decide,
    explain(f, ctx) {
      if (FATAL.has(f.kind)) return f.message;
      if (ctx.failures > cfg.maxFailures) {
        return `${f.message}: failure ${ctx.failures} exceeds max_failures ${cfg.maxFailures}`;
      }
      return `${f.message}: decided ${decide(f, ctx)}`;
    },
  };
}

/**
 * The policy of a job of `workers` from its config. min_workers defaults to the config's
 * distributed.workers, which need not be this job's --workers (a config file written without it
 * says 1): a floor equal to the config's world size means "all of them", i.e. restart and wait;
 * only a lower, explicit floor carries over.
 */
export function failurePolicyFor(cfg: RunConfig, workers: number): FailurePolicy {
  const d = cfg.distributed;
  const minWorkers = d.min_workers === undefined || d.min_workers >= d.workers ? workers : Math.min(d.min_workers, workers);
  return makeFailurePolicy({ maxFailures: d.max_failures, minWorkers });
}

// What the coordinator accepts from a caller that holds the job token (docs/distributed.md#security-model).
// The token proves membership of the job, not which worker is calling, so a token holder could
// publish a forged adapter with one CommitCheckpoint, steal a rank's commands with a second Control
// stream, or take a waiting worker's rank. These checks keep what a call may change to what its
// rank owns: a commit must name the directory the coordinator itself expects, hold a complete
// checkpoint of this run and step, and come from the rank that writes checkpoints; a Control stream
// must come from the connection that registered the rank, one live stream per rank.
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { checkpointsDir, readCheckpoint } from '../src/checkpoint/checkpoint.js';
import type { CheckpointCommit, RegisterReply, RegisterRequest } from '../src/comm/proto.js';
import { messageOf } from '../src/errors.js';
import type { CoordinatorState } from './state.js';

/** The rank that writes the group's checkpoints and commits them (every rank holds the same state). */
const CHECKPOINT_RANK = 0;

export type CommitCheck =
  | { ok: true; path: string; samplesSeen: number }
  /** `reason` is one of a few fixed texts (a log key); `detail` holds what the caller sent. */
  | { ok: false; reason: string; detail: string };

/**
 * A commit names `checkpoints/step-N` of the run's own output directory (resolved as the job spec
 * gave it to the workers) and that directory must already hold a complete checkpoint of step N of
 * this config, with the samples count the commit claims: a forged commit can then at most announce
 * the real checkpoint early, never publish another directory.
 */
export function checkCommit(output: string, configHash: string, req: CheckpointCommit): CommitCheck {
  if (req.rank !== CHECKPOINT_RANK) {
    return { ok: false, reason: `a commit must come from rank ${CHECKPOINT_RANK}, which writes the checkpoints`, detail: `claimed rank ${req.rank}` };
  }
  const want = path.join(checkpointsDir(path.resolve(output)), `step-${req.step}`);
  if (path.resolve(req.path) !== want) {
    return { ok: false, reason: 'a commit must name the checkpoint directory the coordinator expects for its step', detail: `path ${JSON.stringify(req.path)}, expected ${want}` };
  }
  try {
    const ck = readCheckpoint(want, configHash);
    if (ck.state.step !== req.step || ck.state.samples_seen !== req.samples_seen) {
      return { ok: false, reason: 'a commit must match the trainer_state.json of its checkpoint', detail: `commit step ${req.step} samples ${req.samples_seen}, checkpoint step ${ck.state.step} samples ${ck.state.samples_seen}` };
    }
    return { ok: true, path: want, samplesSeen: ck.state.samples_seen };
  } catch (err) {
    return { ok: false, reason: 'a commit must name a complete checkpoint of this run', detail: messageOf(err) };
  }
}

/**
 * Which connection may hold each rank's Control stream: the one that registered the rank (gRPC's
 * peer of the Register call), and only one live stream at a time; a new one is accepted once the
 * old one has closed (a rank whose heartbeat expires is replaced by the state machine anyway).
 */
export class ControlSlots {
  private owners = new Map<number, string>();
  private live = new Map<number, AbortSignal>();

  /** A new group: `owners` maps each rank to the peer of its Register. */
  reset(owners: ReadonlyMap<number, string>): void {
    this.owners = new Map(owners);
    this.live = new Map();
  }

  /** Takes the slot of `rank` for a stream from `peer`: null when accepted, else why not. */
  claim(rank: number, peer: string, signal: AbortSignal): string | null {
    const owner = this.owners.get(rank);
    if (owner !== undefined && owner !== peer) return `rank ${rank} registered over another connection`;
    const live = this.live.get(rank);
    if (live && !live.aborted) return `rank ${rank} already has a live Control stream`;
    this.live.set(rank, signal);
    return null;
  }
}

/** A Register waiting for its group; a repeat of the same call (same worker, same endpoint) waits with it. */
export interface PendingRegister {
  req: RegisterRequest;
  /** gRPC's peer of the call: that connection alone may open the rank's Control stream. */
  peer: string;
  waiters: { resolve(r: RegisterReply): void; reject(e: Error): void }[];
}

/** Repeats of one Register that may wait together (a retry after a dropped connection needs one). */
const MAX_REPEATS = 4;

/**
 * Why a Register must be refused because it would disturb another, or null: not one of the
 * launcher's own processes; a second call of a waiting worker with another endpoint or key (it would
 * orphan the first); or an explicit rank that a waiting worker already asked for (the reducer would
 * move the newcomer to another free rank and so push that rank's real worker out of the group).
 */
export function registerConflict(
  req: RegisterRequest, workerId: string, s: CoordinatorState, pending: ReadonlyMap<string, PendingRegister>, admit?: (workerId: string) => boolean,
): { code: grpc.status; reason: string; detail: string } | null {
  if (admit && !admit(workerId)) return { code: grpc.status.PERMISSION_DENIED, reason: 'not a worker process this launch started', detail: `worker ${workerId}` };
  const same = pending.get(workerId);
  if (same) {
    if (same.req.zmq_endpoint !== req.zmq_endpoint || same.req.curve_public_key !== req.curve_public_key) {
      return { code: grpc.status.ALREADY_EXISTS, reason: 'this worker identity is already registered with another endpoint or key', detail: `worker ${workerId} waits with ${same.req.zmq_endpoint}` };
    }
    return same.waiters.length >= MAX_REPEATS ? { code: grpc.status.RESOURCE_EXHAUSTED, reason: 'too many repeats of one Register', detail: `worker ${workerId}` } : null;
  }
  if ((s.kind === 'waiting-for-workers' || s.kind === 'recovering') && req.requested_rank >= 0 && req.requested_rank < s.expected) {
    const holder = s.members.find((m) => m.rank === req.requested_rank);
    if (holder && pending.get(holder.workerId)?.req.requested_rank === req.requested_rank) {
      return { code: grpc.status.ALREADY_EXISTS, reason: `rank ${req.requested_rank} is already asked for by a waiting worker`, detail: `worker ${holder.workerId} holds it; this is ${workerId}` };
    }
  }
  return null;
}

/** Why a worker cannot join a job whose ZeroMQ links do (or do not) use CURVE: a CURVE ROUTER refuses plaintext DEALERs. */
export function curveMismatch(jobCurve: boolean, req: Pick<RegisterRequest, 'curve_public_key'>): string | null {
  if (jobCurve === !!req.curve_public_key) return null;
  return jobCurve
    ? 'this job uses ZeroMQ CURVE (coordinator --zmq-curve): start the worker with --zmq-curve (or ONELORA_ZMQ_CURVE=1)'
    : 'this worker uses ZeroMQ CURVE but the coordinator was started without --zmq-curve';
}

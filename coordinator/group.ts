// What the coordinator tells and logs of a group: the event a worker's failure report is, the
// timeout events of its clock, the Register reply each member of a newly formed group gets, the
// log lines of its forming and the Ack of an RPC. Pure functions of the reducer's states and
// actions, kept out of server.ts, which only carries them out.
import { encodeJobSpec } from '../src/comm/job.js';
import type { Ack, FailureReport, RegisterReply } from '../src/comm/proto.js';
import { configHash, type RunConfig } from '../src/config/index.js';
import { lateRanks, type CoordinatorAction, type CoordinatorEvent, type CoordinatorState } from './state.js';

type FormGroup = Extract<CoordinatorAction, { type: 'form-group' }>;

/** A worker's ReportFailure as a reducer event: a config error, its disk refusing a write, or a failed all-reduce. */
export function failureEvent(req: FailureReport): CoordinatorEvent {
  if (req.kind === 'config') return { type: 'worker-config-error', rank: req.rank, message: req.message };
  if (req.kind === 'disk-write') return { type: 'disk-write-failed', source: `rank ${req.rank}`, generation: req.generation, step: req.step, message: req.message };
  const late = req.late_rank >= 0 ? req.late_rank : req.rank;
  return { type: 'allreduce-failed', rank: req.rank, generation: req.generation, step: req.step, lateRank: late, message: req.message };
}

/** The Register reply of every member of the group `a` forms, by rank (`curveKeys` in member order). */
export function groupReplies(a: FormGroup, job: { cfg: RunConfig; output: string; stopAt: number }, curveKeys: readonly string[]): Map<number, RegisterReply> {
  const endpoints = a.members.map((m) => m.endpoint);
  const spec = encodeJobSpec({
    config: job.cfg, output: job.output, stop_at: job.stopAt, restore_from: a.restoreFrom,
    state_source_rank: a.stateSourceRank, allreduce_timeout_ms: job.cfg.distributed.allreduce_timeout_s * 1000,
  });
  const resume = { step: a.resume.step, samples_seen: a.resume.samplesSeen, epoch: 0, checkpoint_dir: a.restoreFrom === 'disk' ? (a.durable?.path ?? '') : '' };
  const hash = configHash(job.cfg);
  return new Map(a.members.map((m) => [m.rank, {
    rank: m.rank, world_size: a.members.length, generation: a.generation, peer_endpoints: endpoints, job_spec_json: spec,
    config_hash: hash, resume, peer_curve_public_keys: [...curveKeys],
  }]));
}

/** The log line of a formed group: its fields and its message. */
export function groupFormedLine(a: FormGroup): [Record<string, unknown>, string] {
  const n = a.members.length;
  return [
    { generation: a.generation, workers: n, step: a.resume.step, samples_seen: a.resume.samplesSeen, from: a.restoreFrom, source_rank: a.stateSourceRank },
    `group formed: ${n} workers, generation ${a.generation}, from step ${a.resume.step} (${a.restoreFrom}); data dealt over ${n} ranks from sample ${a.resume.samplesSeen}`,
  ];
}

/** The group's backends in one phrase: `wasm on all 2 workers`, or each rank's when they differ. */
export function backendsPhrase(ranks: readonly number[], devices: readonly string[]): string {
  return new Set(devices).size === 1 ? `${devices[0]} on all ${devices.length} workers` : ranks.map((r, i) => `rank ${r} ${devices[i]}`).join(', ');
}

/** The event the coordinator's clock raises now, if any: a member silent past the heartbeat timeout, or a group not formed in time. */
export function timeoutEvent(
  s: CoordinatorState, lastSeen: Readonly<Record<number, number>>, waitingSince: number, t: { heartbeatMs: number; formMs: number }, now: number,
): CoordinatorEvent | null {
  if (s.kind === 'running' || s.kind === 'checkpointing') {
    const seen = Object.fromEntries(s.members.map((m) => [m.rank, lastSeen[m.rank] ?? now]));
    const late = lateRanks(seen, now, t.heartbeatMs)[0];
    return late ? { type: 'heartbeat-timeout', rank: late.rank, generation: s.generation, silentMs: late.silentMs } : null;
  }
  if (s.kind === 'waiting-for-workers' || s.kind === 'recovering') {
    const waited = now - waitingSince;
    return waited > t.formMs ? { type: 'recovery-timeout', waitedMs: waited } : null;
  }
  return null;
}

/** An RPC's answer: ok unless the reducer ignored the call, with its reason. */
export function ackOf(actions: readonly CoordinatorAction[], generation: number): Ack {
  const ignored = actions.find((a) => a.type === 'ignored');
  return { ok: !ignored, message: ignored && ignored.type === 'ignored' ? ignored.reason : '', generation };
}

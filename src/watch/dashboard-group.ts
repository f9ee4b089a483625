// The worker table of a `launch` dashboard: who is in the group, in what state, how each rank spent
// the last step, and the history of generations and failures. The coordinator feeds it the events
// and actions of its state machine (coordinator/state.ts) as they happen; the table is derived
// here, so the coordinator's only additions are the calls that feed it and one snapshot getter.
import type { CoordinatorAction, CoordinatorEvent, CoordinatorState } from '../../coordinator/state.js';
import type { PhaseTimes } from '../train/loop.js';

export type WorkerState = 'waiting' | 'running' | 'checkpointing' | 'lost' | 'done' | 'failed';

export interface WorkerRow {
  rank: number;
  host: string;
  pid: number;
  backend: string;
  state: WorkerState;
  /** Epoch milliseconds of its last heartbeat (the page shows the age). */
  heartbeat_ms: number | null;
  restarts: number;
  /** The rank's own phases of the last step it reported (`wait` is its data wait). */
  last_step: number | null;
  compute_s: number | null;
  allreduce_s: number | null;
  wait_s: number | null;
}

export interface GroupSnapshot {
  state: CoordinatorState['kind'];
  generation: number;
  workers: WorkerRow[];
  generations: { generation: number; at_s: number; workers: number; step: number; from: string }[];
  failures: { at_s: number; generation: number; rank: number | null; reason: string }[];
  /** Server clock (epoch ms) when the snapshot was taken: heartbeat ages are `now - heartbeat_ms`. */
  now: number;
}

interface RankInfo {
  workerId: string;
  joins: number;
  lost: boolean;
  seen: number | null;
  step: number | null;
  timing: PhaseTimes | null;
}

const LIVE: Partial<Record<CoordinatorState['kind'], WorkerState>> = { running: 'running', checkpointing: 'checkpointing', done: 'done', failed: 'failed' };

export class GroupHistory {
  private readonly ranks = new Map<number, RankInfo>();
  private readonly generations: GroupSnapshot['generations'] = [];
  private readonly failures: GroupSnapshot['failures'] = [];
  private readonly t0 = performance.now();

  private at(): number {
    return (performance.now() - this.t0) / 1000;
  }

  /** One transition of the state machine: `before` is the generation the event arrived in. */
  observe(event: CoordinatorEvent, actions: readonly CoordinatorAction[], before: number): void {
    if (actions.some((a) => a.type === 'ignored')) return;
    for (const a of actions) {
      if (a.type === 'form-group') {
        for (const m of a.members) {
          const r = this.ranks.get(m.rank);
          if (!r) this.ranks.set(m.rank, { workerId: m.workerId, joins: 1, lost: false, seen: null, step: null, timing: null });
          else {
            // A new process at a rank is a restart; a survivor re-registers under its old id.
            if (r.workerId !== m.workerId) r.joins++;
            Object.assign(r, { workerId: m.workerId, lost: false });
          }
        }
        this.generations.push({ generation: a.generation, at_s: this.at(), workers: a.members.length, step: a.resume.step, from: a.restoreFrom });
      }
      if (a.type === 'fail' && event.type === 'recovery-timeout') this.failures.push({ at_s: this.at(), generation: before, rank: null, reason: a.message });
    }
    if (event.type === 'worker-exited' || event.type === 'heartbeat-timeout' || event.type === 'allreduce-failed') {
      const rank = event.type === 'allreduce-failed' ? event.lateRank : event.rank;
      const decided = actions.find((a) => a.type === 'restore' || a.type === 'fail');
      const reason = decided?.type === 'restore' ? decided.reason : decided?.type === 'fail' ? decided.message : event.type === 'worker-exited' ? `rank ${rank} exited (${event.detail})` : event.type;
      this.failures.push({ at_s: this.at(), generation: before, rank, reason });
      const r = this.ranks.get(rank);
      // A late rank of an all-reduce may well be alive (it re-registers as a survivor).
      if (r && event.type !== 'allreduce-failed') r.lost = true;
    }
  }

  /** The ranks' own phase times of a completed step (from their StepReports). */
  stepped(step: number, reports: readonly { rank: number; timing: PhaseTimes | null }[]): void {
    for (const rep of reports) {
      const r = this.ranks.get(rep.rank);
      if (r) Object.assign(r, { step, timing: rep.timing });
    }
  }

  snapshot(state: CoordinatorState, lastSeen: Readonly<Record<number, number>>, devices: ReadonlyMap<number, string>): GroupSnapshot {
    const workers = [...this.ranks.entries()].sort(([a], [b]) => a - b).map(([rank, r]): WorkerRow => {
      // The coordinator forgets heartbeats when a group re-forms; the table keeps the last one.
      r.seen = Math.max(r.seen ?? 0, lastSeen[rank] ?? 0) || null;
      const cut = r.workerId.lastIndexOf('/');
      return {
        rank, host: r.workerId.slice(0, cut), pid: Number(r.workerId.slice(cut + 1)), backend: devices.get(rank) ?? '?',
        state: r.lost ? 'lost' : (LIVE[state.kind] ?? 'waiting'), heartbeat_ms: r.seen, restarts: r.joins - 1,
        last_step: r.step, compute_s: r.timing?.compute_s ?? null, allreduce_s: r.timing?.allreduce_s ?? null, wait_s: r.timing?.data_wait_s ?? null,
      };
    });
    return { state: state.kind, generation: state.generation, workers, generations: [...this.generations], failures: [...this.failures], now: Date.now() };
  }
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeFailurePolicy, type FailurePolicy, type FailurePolicyConfig } from '../../coordinator/policy.js';
import {
  initialState,
  lateRanks,
  reduce,
  type CoordinatorAction,
  type CoordinatorEvent,
  type CoordinatorState,
  type Durable,
  type JobParams,
} from '../../coordinator/state.js';

type Job = JobParams & FailurePolicyConfig;
const params = (p: Partial<Job> = {}): Job => ({ workers: 3, minWorkers: 3, maxFailures: 3, totalSteps: 4, checkpointEvery: 2, ...p });

/** A reducer state together with the one policy the coordinator injects into every call. */
interface Machine {
  state: CoordinatorState;
  policy: FailurePolicy;
}
const machine = (job: Job, resume: Durable | null = null): Machine => ({ state: initialState(job, resume), policy: makeFailurePolicy(job) });
const step = (m: Machine, ev: CoordinatorEvent) => reduce(m.state, ev, m.policy);

const reg = (id: string, requestedRank = -1): CoordinatorEvent => ({ type: 'worker-registered', workerId: id, requestedRank, endpoint: `tcp://h:${id}` });
const report = (rank: number, s: number, generation = 1, extra: Partial<{ nan: boolean; loss: number; samples: number }> = {}): CoordinatorEvent => ({
  type: 'step-reported', rank, generation, step: s, samples: 4, loss: 1, nan: false, ...extra,
});
const commit = (s: number, generation = 1, samplesSeen = s * 12): CoordinatorEvent => ({
  type: 'checkpoint-committed', generation, step: s, path: `ckpt/step-${s}`, samplesSeen,
});

/** Feeds events in order; returns the machine after them and every action, tagged by type for compact checks. */
function run(m: Machine, events: CoordinatorEvent[]): Machine & { actions: CoordinatorAction[] } {
  const actions: CoordinatorAction[] = [];
  let state = m.state;
  for (const ev of events) {
    const t = reduce(state, ev, m.policy);
    state = t.state;
    actions.push(...t.actions);
  }
  return { state, policy: m.policy, actions };
}

/** start-N: step N starts; done-N: it completed; ckpt-N: it completed and is checkpointed. */
const kinds = (actions: CoordinatorAction[]): string[] =>
  actions.map((a) => (a.type === 'start-step' ? `start-${a.step}` : a.type === 'step-completed' ? `${a.checkpoint ? 'ckpt' : 'done'}-${a.step}` : a.type));

const allReport = (s: number, n = 3, generation = 1): CoordinatorEvent[] => Array.from({ length: n }, (_, r) => report(r, s, generation));
const registerAll = (ids: string[]): CoordinatorEvent[] => ids.map((id) => reg(id));

void describe('coordinator state machine', () => {
  void it('a normal run: register, steps, checkpoints every 2 steps and at the end, done', () => {
    const { state, actions } = run(machine(params()), [
      ...registerAll(['a', 'b', 'c']),
      ...allReport(1), ...allReport(2), commit(2), ...allReport(3), ...allReport(4), commit(4),
    ]);
    assert.equal(state.kind, 'done');
    assert.deepEqual(kinds(actions), [
      'form-group', 'start-1', 'done-1',
      'start-2', 'ckpt-2', 'start-3', 'done-3', 'start-4', 'ckpt-4', 'finish',
    ]);
    assert.deepEqual(state.committed, { step: 4, samplesSeen: 48 });
    assert.equal(state.durable?.path, 'ckpt/step-4');
    const start4 = actions.find((a) => a.type === 'start-step' && a.step === 4);
    assert.deepEqual(start4, { type: 'start-step', generation: 1, step: 4, samplesSeen: 36, checkpoint: true });
  });

  void it('a completed step carries what the outputs need: its start counter, the world it was dealt over, the commit', () => {
    const { actions } = run(machine(params()), [...registerAll(['a', 'b', 'c']), ...allReport(1), ...allReport(2)]);
    const done = actions.filter((a) => a.type === 'step-completed');
    assert.deepEqual(done, [
      { type: 'step-completed', generation: 1, step: 1, samplesSeen: 0, worldSize: 3, committed: { step: 1, samplesSeen: 12 }, checkpoint: false },
      { type: 'step-completed', generation: 1, step: 2, samplesSeen: 12, worldSize: 3, committed: { step: 2, samplesSeen: 24 }, checkpoint: true },
    ]);
  });

  void it('a checkpoint committed before every rank reported its step is held, and applied when the step completes', () => {
    const m = run(machine(params()), [...registerAll(['a', 'b', 'c']), ...allReport(1), report(0, 2), commit(2)]);
    assert.equal(m.state.kind, 'running');
    assert.deepEqual(m.state.kind === 'running' && m.state.held, { step: 2, samplesSeen: 24, path: 'ckpt/step-2' });
    const t = run(m, [report(1, 2), report(2, 2)]);
    assert.deepEqual(kinds(t.actions), ['ckpt-2', 'start-3']);
    assert.equal(t.state.durable?.path, 'ckpt/step-2');
    assert.equal(t.state.kind === 'running' && t.state.held, null);
  });

  void it('a registered worker of the group being formed dies: it is to be replaced, and the group still waits for all', () => {
    const t = run(machine(params()), [reg('a'), reg('b'), { type: 'worker-exited', rank: 1, generation: 1, detail: 'code 1' }]);
    assert.equal(t.state.kind, 'waiting-for-workers');
    assert.equal(t.state.failures, 1);
    assert.deepEqual(t.actions, [{ type: 'replace-worker', generation: 1, rank: 1 }]);
    assert.equal(run(t, [reg('b2'), reg('c')]).state.kind, 'running');
  });

  void it('a worker process exits before registering: a failure, replaced while the budget lasts, then the run fails at once', () => {
    const exited = { type: 'worker-exited', rank: 1, generation: 1, detail: 'exit code 1', beforeRegistering: true } as const;
    const once = run(machine(params()), [reg('a'), exited]);
    assert.equal(once.state.kind, 'waiting-for-workers');
    assert.equal(once.state.failures, 1);
    assert.deepEqual(once.actions, [{ type: 'replace-worker', generation: 1, rank: 1 }]);
    const spent = run(machine(params({ maxFailures: 0 })), [reg('a'), exited]);
    assert.equal(spent.state.kind, 'failed');
    // a second notice of a lost member (its stream closing after its process exit) is not another failure
    const again = run(machine(params()), [reg('a'), { type: 'worker-exited', rank: 1, generation: 1, detail: 'its control stream closed' }]);
    assert.equal(again.state.failures, 0);
  });

  void it('ranks: a requested rank is honoured, others get the lowest free one', () => {
    const { actions } = run(machine(params()), [reg('a', 2), reg('b', 2), reg('c')]);
    const form = actions.find((a) => a.type === 'form-group');
    assert.ok(form && form.type === 'form-group');
    const ranks = new Map(form.members.map((m) => [m.workerId, m.rank]));
    assert.deepEqual(['a', 'b', 'c'].map((id) => [id, ranks.get(id)]), [['a', 2], ['b', 0], ['c', 1]]);
  });

  void it('a worker dies mid-step → recovering → a replacement registers → running from the committed step', () => {
    const mid = run(machine(params()), [...registerAll(['a', 'b', 'c']), ...allReport(1), report(0, 2), report(1, 2)]);
    assert.equal(mid.state.kind, 'running');
    const died = step(mid, { type: 'worker-exited', rank: 2, generation: 1, detail: 'signal SIGKILL' });
    assert.equal(died.state.kind, 'recovering');
    assert.equal(died.state.generation, 2);
    // restart: the launcher is told to replace rank 2's process
    assert.deepEqual(kinds(died.actions), ['abort-step', 'restore', 'replace-worker']);
    assert.deepEqual(died.actions[2], { type: 'replace-worker', generation: 2, rank: 2 });
    assert.match((died.actions[0] as { reason: string }).reason, /rank 2 exited \(signal SIGKILL\)/);
    // step 1 was finished by everyone: that is the committed state the survivors hold in memory
    assert.deepEqual(died.state.committed, { step: 1, samplesSeen: 12 });

    const back = run({ ...mid, state: died.state }, [reg('a', 0), reg('b', 1), reg('c2', 2)]);
    assert.equal(back.state.kind, 'running');
    const form = back.actions.find((a) => a.type === 'form-group');
    assert.ok(form && form.type === 'form-group');
    assert.equal(form.restoreFrom, 'memory');
    assert.equal(form.stateSourceRank, 0);
    assert.deepEqual(form.resume, { step: 1, samplesSeen: 12 });
    assert.deepEqual(back.actions.at(-1), { type: 'start-step', generation: 2, step: 2, samplesSeen: 12, checkpoint: true });
  });

  void it('when only newcomers re-form the group, the state comes from the disk checkpoint', () => {
    const p = params({ workers: 1, minWorkers: 1, totalSteps: 10 });
    const s = run(machine(p), [reg('a'), report(0, 1), report(0, 2), commit(2, 1, 8), report(0, 3)]);
    const t = run(s, [{ type: 'worker-exited', rank: 0, generation: 1, detail: 'code 137' }, reg('a2')]);
    const form = t.actions.find((a) => a.type === 'form-group');
    assert.ok(form && form.type === 'form-group');
    assert.equal(form.restoreFrom, 'disk');
    assert.deepEqual(form.resume, { step: 2, samplesSeen: 8 });
    assert.deepEqual(t.actions.at(-1), { type: 'start-step', generation: 2, step: 3, samplesSeen: 8, checkpoint: false });
  });

  void it('min_workers below the world size: continue with fewer, re-split over the live ranks', () => {
    const s = run(machine(params({ minWorkers: 2 })), [...registerAll(['a', 'b', 'c']), ...allReport(1)]);
    const t = run(s, [{ type: 'heartbeat-timeout', rank: 1, generation: 1, silentMs: 10_000 }, reg('a', 0), reg('c', 2)]);
    assert.equal(t.state.kind, 'running');
    assert.equal(t.state.kind === 'running' && t.state.members.length, 2);
    // rank 2 no longer exists in a group of 2: c gets rank 1
    assert.deepEqual(t.state.kind === 'running' && t.state.members.map((m) => [m.workerId, m.rank]), [['a', 0], ['c', 1]]);
    // the data is dealt over the 2 live ranks from the committed sample counter; nobody is replaced
    assert.ok(t.actions.some((a) => a.type === 'form-group' && a.members.length === 2 && a.resume.samplesSeen === 12));
    assert.ok(!t.actions.some((a) => a.type === 'replace-worker'));
    assert.match(JSON.stringify(t.actions), /rank 1 sent no heartbeat for 10 s; continue-with-fewer from step 1/);
  });

  void it('max_failures exceeded → failed, with the step and the budget named', () => {
    let s = run(machine(params({ maxFailures: 1 })), [...registerAll(['a', 'b', 'c'])]);
    s = run(s, [{ type: 'worker-exited', rank: 1, generation: 1, detail: 'code 1' }, ...registerAll(['a', 'b2', 'c'])]);
    assert.equal(s.state.kind, 'running');
    const t = step(s, { type: 'allreduce-failed', rank: 0, generation: 2, step: 1, lateRank: 2, message: 'all-reduce step 1: no chunk 0 from rank 2 after 60 s' });
    assert.equal(t.state.kind, 'failed');
    assert.deepEqual(kinds(t.actions), ['abort-step', 'fail']);
    assert.equal(
      (t.actions[1] as { message: string }).message,
      'step 1: rank 0: all-reduce step 1: no chunk 0 from rank 2 after 60 s: failure 2 exceeds max_failures 1',
    );
  });

  void it('a NaN report fails the run with the step and rank named', () => {
    const s = run(machine(params()), [...registerAll(['a', 'b', 'c']), ...allReport(1)]);
    const t = step(s, report(1, 2, 1, { nan: true }));
    assert.equal(t.state.kind, 'failed');
    assert.deepEqual(kinds(t.actions), ['abort-step', 'fail']);
    assert.match((t.actions[1] as { message: string }).message, /^step 2: rank 1 reported a non-finite loss/);
  });

  void it('stale-generation messages are ignored and change nothing', () => {
    const s0 = run(machine(params({ minWorkers: 2 })), [...registerAll(['a', 'b', 'c'])]);
    const s1 = run(s0, [{ type: 'worker-exited', rank: 2, generation: 1, detail: 'code 1' }, reg('a'), reg('b')]);
    assert.equal(s1.state.generation, 2);
    for (const ev of [
      report(0, 1, 1),
      { type: 'worker-exited', rank: 1, generation: 1, detail: 'late news' },
      { type: 'allreduce-failed', rank: 0, generation: 1, step: 1, lateRank: 2, message: 'old' },
      commit(1, 1),
    ] satisfies CoordinatorEvent[]) {
      const t = step(s1, ev);
      assert.equal(t.state, s1.state);
      assert.equal(t.actions.length, 1);
      assert.match((t.actions[0] as { reason: string }).reason, /stale generation 1 \(current 2\)/);
    }
  });

  void it('events after the run ended are ignored', () => {
    const s = run(machine(params({ workers: 1, minWorkers: 1, totalSteps: 1 })), [reg('a'), report(0, 1), commit(1, 1, 4)]);
    assert.equal(s.state.kind, 'done');
    assert.equal(step(s, report(0, 2)).state, s.state);
  });

  void it('a recovery that never completes fails with the count named', () => {
    const s = run(machine(params()), [...registerAll(['a', 'b', 'c']), { type: 'worker-exited', rank: 0, generation: 1, detail: 'x' }, reg('b')]);
    const t = step(s, { type: 'recovery-timeout', waitedMs: 120_000 });
    assert.equal(t.state.kind, 'failed');
    assert.equal((t.actions[0] as { message: string }).message, 'only 1 of 3 workers registered within 120 s');
  });

  void it('resuming from a checkpoint starts at the next step from its sample counter', () => {
    const s = machine(params({ workers: 1, minWorkers: 1 }), { step: 2, samplesSeen: 8, path: 'ckpt/step-2' });
    const t = step(s, reg('a'));
    assert.deepEqual(t.actions.at(-1), { type: 'start-step', generation: 1, step: 3, samplesSeen: 8, checkpoint: false });
  });

  void it('a worker\'s config error stops the run at once with exit 2, while forming or running, whatever the budget', () => {
    const forming = run(machine(params()), [reg('a'), { type: 'worker-config-error', rank: 1, message: 'data.validation: x.arrow does not exist' }]);
    assert.equal(forming.state.kind, 'failed');
    assert.deepEqual(forming.actions.at(-1), { type: 'fail', message: 'rank 1: data.validation: x.arrow does not exist', exitCode: 2 });
    assert.ok(!forming.actions.some((a) => a.type === 'replace-worker'), 'no restart');
    const running = run(machine(params()), [...registerAll(['a', 'b', 'c']), { type: 'worker-config-error', rank: 2, message: 'bad' }]);
    assert.deepEqual(kinds(running.actions).slice(-2), ['abort-step', 'fail']);
  });

  void it('a checkpoint the disk refused fails the run (exit 1) naming the last complete checkpoint; no failure of the budget is spent on it', () => {
    const { state, actions } = run(machine(params({ maxFailures: 9 })), [
      ...registerAll(['a', 'b', 'c']), ...allReport(1), ...allReport(2), commit(2), ...allReport(3), ...allReport(4),
      { type: 'disk-write-failed', source: 'rank 0', generation: 1, step: 4, message: 'cannot write out/checkpoints/.tmp-step-4-1/trainable.safetensors: ENOSPC' },
    ]);
    assert.equal(state.kind, 'failed');
    const fail = actions.at(-1);
    assert.equal(fail?.type, 'fail');
    assert.ok(fail?.type === 'fail' && fail.exitCode === 1 && fail.message.includes('.tmp-step-4-1/trainable.safetensors') && fail.message.includes('(ckpt/step-2) is the resume point'), JSON.stringify(fail));
    assert.ok(!actions.some((a) => a.type === 'restore' || a.type === 'replace-worker'));
  });

  void it('lateRanks names the longest silent rank first', () => {
    assert.deepEqual(lateRanks({ 0: 9_000, 1: 1_000, 2: 4_000 }, 12_000, 5_000), [{ rank: 1, silentMs: 11_000 }, { rank: 2, silentMs: 8_000 }]);
  });
});

void describe('failure policy', () => {
  const cases: [string, { maxFailures: number; minWorkers: number }, { failures: number; worldSize: number; liveWorkers: number }, string][] = [
    ['within budget, all workers required → restart', { maxFailures: 3, minWorkers: 4 }, { failures: 1, worldSize: 4, liveWorkers: 3 }, 'restart'],
    ['within budget, enough live workers → continue-with-fewer', { maxFailures: 3, minWorkers: 2 }, { failures: 2, worldSize: 4, liveWorkers: 3 }, 'continue-with-fewer'],
    ['below min_workers → restart (wait for replacements)', { maxFailures: 3, minWorkers: 3 }, { failures: 1, worldSize: 3, liveWorkers: 2 }, 'restart'],
    ['group already at min_workers loses one → restart', { maxFailures: 3, minWorkers: 2 }, { failures: 1, worldSize: 2, liveWorkers: 1 }, 'restart'],
    ['budget exhausted → fail', { maxFailures: 3, minWorkers: 1 }, { failures: 4, worldSize: 4, liveWorkers: 3 }, 'fail'],
    ['max_failures 0 → the first failure fails', { maxFailures: 0, minWorkers: 1 }, { failures: 1, worldSize: 2, liveWorkers: 1 }, 'fail'],
  ];
  for (const [name, cfg, ctx, want] of cases) {
    void it(name, () => {
      assert.equal(makeFailurePolicy(cfg).decide({ kind: 'worker-exited', rank: 0, message: 'x' }, ctx), want);
    });
  }
});

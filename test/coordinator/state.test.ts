import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeFailurePolicy } from '../../coordinator/policy.js';
import {
  initialState,
  lateRanks,
  step,
  type CoordinatorAction,
  type CoordinatorEvent,
  type CoordinatorState,
  type JobParams,
} from '../../coordinator/state.js';

const params = (p: Partial<JobParams> = {}): JobParams => ({ workers: 3, minWorkers: 3, maxFailures: 3, totalSteps: 4, checkpointEvery: 2, ...p });

const reg = (id: string, requestedRank = -1): CoordinatorEvent => ({ type: 'worker-registered', workerId: id, requestedRank, endpoint: `tcp://h:${id}` });
const report = (rank: number, s: number, generation = 1, extra: Partial<{ nan: boolean; loss: number; samples: number }> = {}): CoordinatorEvent => ({
  type: 'step-reported', rank, generation, step: s, samples: 4, loss: 1, nan: false, ...extra,
});
const commit = (s: number, generation = 1, samplesSeen = s * 12): CoordinatorEvent => ({
  type: 'checkpoint-committed', generation, step: s, path: `ckpt/step-${s}`, samplesSeen,
});

/** Feeds events in order; returns the final state and every action, tagged by type for compact checks. */
function run(state: CoordinatorState, events: CoordinatorEvent[]): { state: CoordinatorState; actions: CoordinatorAction[] } {
  const actions: CoordinatorAction[] = [];
  for (const ev of events) {
    const t = step(state, ev);
    state = t.state;
    actions.push(...t.actions);
  }
  return { state, actions };
}

const kinds = (actions: CoordinatorAction[]): string[] =>
  actions.map((a) => (a.type === 'start-step' ? `start-${a.step}` : a.type === 'write-checkpoint' ? `ckpt-${a.step}` : a.type));

const allReport = (s: number, n = 3, generation = 1): CoordinatorEvent[] => Array.from({ length: n }, (_, r) => report(r, s, generation));
const registerAll = (ids: string[]): CoordinatorEvent[] => ids.map((id) => reg(id));

void describe('coordinator state machine', () => {
  void it('a normal run: register, steps, checkpoints every 2 steps and at the end, done', () => {
    const { state, actions } = run(initialState(params()), [
      ...registerAll(['a', 'b', 'c']),
      ...allReport(1), ...allReport(2), commit(2), ...allReport(3), ...allReport(4), commit(4),
    ]);
    assert.equal(state.kind, 'done');
    assert.deepEqual(kinds(actions), [
      'assign-rank', 'assign-rank', 'assign-rank', 'form-group', 're-split-data', 'start-1',
      'start-2', 'ckpt-2', 'start-3', 'start-4', 'ckpt-4', 'finish',
    ]);
    assert.deepEqual(state.committed, { step: 4, samplesSeen: 48 });
    assert.equal(state.durable?.path, 'ckpt/step-4');
    const start4 = actions.find((a) => a.type === 'start-step' && a.step === 4);
    assert.deepEqual(start4, { type: 'start-step', generation: 1, step: 4, samplesSeen: 36, checkpoint: true });
  });

  void it('ranks: a requested rank is honoured, others get the lowest free one', () => {
    const { actions } = run(initialState(params()), [reg('a', 2), reg('b', 2), reg('c')]);
    const ranks = actions.flatMap((a) => (a.type === 'assign-rank' ? [[a.workerId, a.rank]] : []));
    assert.deepEqual(ranks, [['a', 2], ['b', 0], ['c', 1]]);
  });

  void it('a worker dies mid-step → recovering → a replacement registers → running from the committed step', () => {
    const mid = run(initialState(params()), [...registerAll(['a', 'b', 'c']), ...allReport(1), report(0, 2), report(1, 2)]);
    assert.equal(mid.state.kind, 'running');
    const died = step(mid.state, { type: 'worker-exited', rank: 2, generation: 1, detail: 'signal SIGKILL' });
    assert.equal(died.state.kind, 'recovering');
    assert.equal(died.state.generation, 2);
    assert.deepEqual(kinds(died.actions), ['abort-step', 'restore']);
    assert.match((died.actions[0] as { reason: string }).reason, /rank 2 exited \(signal SIGKILL\)/);
    // step 1 was finished by everyone: that is the committed state the survivors hold in memory
    assert.deepEqual(died.state.committed, { step: 1, samplesSeen: 12 });

    const back = run(died.state, [reg('a', 0), reg('b', 1), reg('c2', 2)]);
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
    const s = run(initialState(p), [reg('a'), report(0, 1), report(0, 2), commit(2, 1, 8), report(0, 3)]).state;
    const t = run(s, [{ type: 'worker-exited', rank: 0, generation: 1, detail: 'code 137' }, reg('a2')]);
    const form = t.actions.find((a) => a.type === 'form-group');
    assert.ok(form && form.type === 'form-group');
    assert.equal(form.restoreFrom, 'disk');
    assert.deepEqual(form.resume, { step: 2, samplesSeen: 8 });
    assert.deepEqual(t.actions.at(-1), { type: 'start-step', generation: 2, step: 3, samplesSeen: 8, checkpoint: false });
  });

  void it('min_workers below the world size: continue with fewer, re-split over the live ranks', () => {
    const s = run(initialState(params({ minWorkers: 2 })), [...registerAll(['a', 'b', 'c']), ...allReport(1)]).state;
    const t = run(s, [{ type: 'heartbeat-timeout', rank: 1, generation: 1, silentMs: 10_000 }, reg('a', 0), reg('c', 2)]);
    assert.equal(t.state.kind, 'running');
    assert.equal(t.state.kind === 'running' && t.state.members.length, 2);
    // rank 2 no longer exists in a group of 2: c gets rank 1
    assert.deepEqual(t.state.kind === 'running' && t.state.members.map((m) => [m.workerId, m.rank]), [['a', 0], ['c', 1]]);
    assert.ok(t.actions.some((a) => a.type === 're-split-data' && a.worldSize === 2 && a.samplesSeen === 12));
    assert.match(JSON.stringify(t.actions), /rank 1 sent no heartbeat for 10 s; continue-with-fewer from step 1/);
  });

  void it('max_failures exceeded → failed, with the step and the budget named', () => {
    let s = run(initialState(params({ maxFailures: 1 })), [...registerAll(['a', 'b', 'c'])]).state;
    s = run(s, [{ type: 'worker-exited', rank: 1, generation: 1, detail: 'code 1' }, ...registerAll(['a', 'b2', 'c'])]).state;
    assert.equal(s.kind, 'running');
    const t = step(s, { type: 'allreduce-failed', rank: 0, generation: 2, step: 1, lateRank: 2, message: 'all-reduce step 1: no chunk 0 from rank 2 after 60 s' });
    assert.equal(t.state.kind, 'failed');
    assert.deepEqual(kinds(t.actions), ['abort-step', 'fail']);
    assert.equal(
      (t.actions[1] as { message: string }).message,
      'step 1: rank 0: all-reduce step 1: no chunk 0 from rank 2 after 60 s: failure 2 exceeds max_failures 1',
    );
  });

  void it('a NaN report fails the run with the step and rank named', () => {
    const s = run(initialState(params()), [...registerAll(['a', 'b', 'c']), ...allReport(1)]).state;
    const t = step(s, report(1, 2, 1, { nan: true }));
    assert.equal(t.state.kind, 'failed');
    assert.deepEqual(kinds(t.actions), ['abort-step', 'fail']);
    assert.match((t.actions[1] as { message: string }).message, /^step 2: rank 1 reported a non-finite loss/);
  });

  void it('stale-generation messages are ignored and change nothing', () => {
    const s0 = run(initialState(params({ minWorkers: 2 })), [...registerAll(['a', 'b', 'c'])]).state;
    const s1 = run(s0, [{ type: 'worker-exited', rank: 2, generation: 1, detail: 'code 1' }, reg('a'), reg('b')]).state;
    assert.equal(s1.generation, 2);
    for (const ev of [
      report(0, 1, 1),
      { type: 'worker-exited', rank: 1, generation: 1, detail: 'late news' },
      { type: 'allreduce-failed', rank: 0, generation: 1, step: 1, lateRank: 2, message: 'old' },
      commit(1, 1),
    ] satisfies CoordinatorEvent[]) {
      const t = step(s1, ev);
      assert.equal(t.state, s1);
      assert.equal(t.actions.length, 1);
      assert.match((t.actions[0] as { reason: string }).reason, /stale generation 1 \(current 2\)/);
    }
  });

  void it('events after the run ended are ignored', () => {
    const s = run(initialState(params({ workers: 1, minWorkers: 1, totalSteps: 1 })), [reg('a'), report(0, 1), commit(1, 1, 4)]).state;
    assert.equal(s.kind, 'done');
    assert.equal(step(s, report(0, 2)).state, s);
  });

  void it('a recovery that never completes fails with the count named', () => {
    const s = run(initialState(params()), [...registerAll(['a', 'b', 'c']), { type: 'worker-exited', rank: 0, generation: 1, detail: 'x' }, reg('b')]).state;
    const t = step(s, { type: 'recovery-timeout', waitedMs: 120_000 });
    assert.equal(t.state.kind, 'failed');
    assert.equal((t.actions[0] as { message: string }).message, 'only 1 of 3 workers registered within 120 s');
  });

  void it('resuming from a checkpoint starts at the next step from its sample counter', () => {
    const s = initialState(params({ workers: 1, minWorkers: 1 }), { step: 2, samplesSeen: 8, path: 'ckpt/step-2' });
    const t = step(s, reg('a'));
    assert.deepEqual(t.actions.at(-1), { type: 'start-step', generation: 1, step: 3, samplesSeen: 8, checkpoint: false });
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

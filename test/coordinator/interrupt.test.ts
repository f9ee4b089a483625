// The coordinator's state machine under Ctrl-C (coordinator/state.ts): the step in flight ends,
// the last finished step is checkpointed unless it is on disk, the workers stop, and the run ends
// interrupted (resumable from that checkpoint); the workers leaving after the stop are no failure.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeFailurePolicy } from '../../coordinator/policy.js';
import { initialState, reduce, type CoordinatorAction, type CoordinatorEvent, type CoordinatorState } from '../../coordinator/state.js';

const job = { workers: 2, minWorkers: 2, maxFailures: 3, totalSteps: 10, checkpointEvery: 4 };
const policy = makeFailurePolicy(job);

function run(events: CoordinatorEvent[], state: CoordinatorState = initialState(job)): { state: CoordinatorState; actions: CoordinatorAction[] } {
  const actions: CoordinatorAction[] = [];
  for (const ev of events) {
    const t = reduce(state, ev, policy);
    state = t.state;
    actions.push(...t.actions);
  }
  return { state, actions };
}

const reg = (id: string): CoordinatorEvent => ({ type: 'worker-registered', workerId: id, requestedRank: -1, endpoint: `tcp://h:${id}` });
const both = (step: number): CoordinatorEvent[] => [0, 1].map((rank) => ({ type: 'step-reported', rank, generation: 1, step, samples: 4, loss: 1, nan: false }));
const commit = (step: number): CoordinatorEvent => ({ type: 'checkpoint-committed', generation: 1, step, path: `ck/step-${step}`, samplesSeen: step * 8 });
const types = (a: CoordinatorAction[]): string[] => a.filter((x) => x.type !== 'ignored').map((x) => (x.type === 'start-step' ? `start-${x.step}` : x.type));

test('Ctrl-C between checkpoints: step 2 finishes, rank 0 checkpoints it, the workers stop, the run ends at step 2', () => {
  const mid = run([reg('a'), reg('b'), ...both(1), { type: 'interrupted' }]);
  assert.deepEqual(types(mid.actions), ['form-group', 'start-1', 'step-completed', 'start-2']);
  const end = run([...both(2), { type: 'worker-exited', rank: 1, generation: 1, detail: 'exit 0' }, commit(2)], mid.state);
  assert.deepEqual(types(end.actions), ['step-completed', 'stop-with-checkpoint', 'interrupt']);
  const stop = end.actions.find((a) => a.type === 'stop-with-checkpoint');
  assert.deepEqual(stop && 'committed' in stop ? stop.committed : null, { step: 2, samplesSeen: 16 });
  const last = end.actions.at(-1);
  assert.deepEqual(last?.type === 'interrupt' ? last.durable : null, { step: 2, samplesSeen: 16, path: 'ck/step-2' });
  assert.equal(end.state.kind, 'done');
});

test('Ctrl-C during a checkpointed step: no second checkpoint, the run ends at it', () => {
  const mid = run([reg('a'), reg('b'), ...both(1), ...both(2), ...both(3), { type: 'interrupted' }, ...both(4)]);
  const end = run([commit(4)], mid.state);
  assert.deepEqual(types(end.actions), ['interrupt']);
});

test('Ctrl-C while the group forms stops at once, resuming from the disk; Ctrl-C during the last step lets it finish', () => {
  assert.deepEqual(types(run([reg('a'), { type: 'interrupted' }]).actions), ['interrupt']);
  const last = { ...job, totalSteps: 2 };
  const t = run([reg('a'), reg('b'), ...both(1), { type: 'interrupted' }, ...both(2), commit(2)], initialState(last));
  assert.deepEqual(types(t.actions).slice(-2), ['step-completed', 'finish']);
});

// What the dashboard reads and derives, without a browser: a run directory read incrementally
// (torn last lines, evaluations, a metrics.jsonl rewritten by a resume, checkpoints and summary
// appearing), folders of runs, and the worker table built from the coordinator's own reducer.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { makeFailurePolicy } from '../../coordinator/policy.js';
import { initialState, reduce, type CoordinatorEvent, type CoordinatorState } from '../../coordinator/state.js';
import { trimMetrics } from '../../src/train/run-dir.js';
import { GroupHistory } from '../../src/watch/dashboard-group.js';
import { expandRunDirs, RunTail } from '../../src/watch/dashboard-runs.js';
import { throwsUser, tmpDir } from '../helpers.js';

const line = (step: number, wall = step): string => JSON.stringify({ step, loss: 1 / step, lr: 0.1, samples_per_s: 5, peak_bytes: 1024, wall_s: wall }) + '\n';

test('RunTail: appended lines once each, a torn line when it is whole, a rewrite as a reset', () => {
  const dir = tmpDir('tail');
  const file = path.join(dir, 'metrics.jsonl');
  const tail = new RunTail('run0', 'r', dir);
  assert.equal(tail.poll(), null, 'nothing there yet');
  fs.writeFileSync(file, JSON.stringify({ step: 0, eval: { loss: 3 } }) + '\n' + line(1) + line(2).slice(0, 10));
  const u1 = tail.poll();
  assert.ok(u1 && !u1.reset);
  assert.deepEqual(u1.steps.map((s) => s.step), [1]);
  assert.deepEqual(u1.evals, [{ step: 0, eval: { loss: 3 } }]);
  fs.appendFileSync(file, line(2).slice(10) + line(3));
  const u2 = tail.poll();
  assert.ok(u2 && !u2.reset);
  assert.deepEqual(u2.steps.map((s) => s.step), [2, 3]);
  assert.equal(tail.poll(), null, 'unchanged: no update');
  // A resume from step 2 cuts the log back (a rename: a new file), then trains step 3 again.
  trimMetrics(dir, 2);
  fs.appendFileSync(file, line(3, 0.5));
  const u3 = tail.poll();
  assert.ok(u3?.reset);
  assert.deepEqual(u3.run.steps.map((s) => [s.step, s.wall_s]), [[1, 1], [2, 2], [3, 0.5]]);
  fs.mkdirSync(path.join(dir, 'checkpoints', 'step-10'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'checkpoints', 'step-2'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'checkpoints', 'latest'), 'step-10');
  fs.writeFileSync(path.join(dir, 'summary.json'), JSON.stringify({ steps: 3 }));
  const u4 = tail.poll();
  assert.ok(u4 && !u4.reset);
  assert.deepEqual([u4.checkpoints, u4.latest, u4.summary], [['step-2', 'step-10'], 'step-10', { steps: 3 }]);
  assert.deepEqual(tail.snapshot().steps.length, 3);
});

test('expandRunDirs: a run, a folder of runs (bench methods), the same name twice, and refusals', () => {
  const root = tmpDir('runs');
  for (const d of ['bench/lora', 'bench/1lora', 'a/out', 'b/out', 'empty']) fs.mkdirSync(path.join(root, d), { recursive: true });
  for (const d of ['bench/lora', 'bench/1lora', 'a/out', 'b/out']) fs.writeFileSync(path.join(root, d, 'metrics.jsonl'), line(1));
  assert.deepEqual(expandRunDirs([path.join(root, 'bench')]).map((r) => r.name), ['bench/1lora', 'bench/lora']);
  const twins = [path.join(root, 'a/out'), path.join(root, 'b/out')];
  assert.deepEqual(expandRunDirs(twins).map((r) => r.name), twins);
  throwsUser(() => expandRunDirs([path.join(root, 'empty')]), 'neither a run directory');
  throwsUser(() => expandRunDirs([path.join(root, 'missing')]), 'RUN_DIR', 'no such directory');
});

test('GroupHistory: the worker table through a kill and a restart, from the coordinator\'s reducer', () => {
  const job = { workers: 2, minWorkers: 2, maxFailures: 3, totalSteps: 4, checkpointEvery: 2 };
  const policy = makeFailurePolicy(job);
  const history = new GroupHistory();
  let state: CoordinatorState = initialState(job);
  const feed = (ev: CoordinatorEvent): void => {
    const t = reduce(state, ev, policy);
    history.observe(ev, t.actions, state.generation);
    state = t.state;
  };
  const devices = new Map([[0, 'wasm'], [1, 'wasm']]);
  feed({ type: 'worker-registered', workerId: 'h/10', requestedRank: 0, endpoint: 'tcp://h:1' });
  feed({ type: 'worker-registered', workerId: 'h/11', requestedRank: 1, endpoint: 'tcp://h:2' });
  for (const rank of [0, 1]) feed({ type: 'step-reported', rank, generation: 1, step: 1, samples: 2, loss: 1, nan: false });
  const timing = (compute_s: number) => ({ data_wait_s: 0.1, compute_s, allreduce_s: 0.2, optimizer_s: 0 });
  history.stepped(1, [{ rank: 0, timing: timing(1) }, { rank: 1, timing: timing(2) }]);
  let snap = history.snapshot(state, { 0: 1000, 1: 2000 }, devices);
  assert.deepEqual(snap.workers.map((w) => [w.rank, w.host, w.pid, w.state, w.restarts, w.compute_s, w.heartbeat_ms]), [[0, 'h', 10, 'running', 0, 1, 1000], [1, 'h', 11, 'running', 0, 2, 2000]]);
  feed({ type: 'worker-exited', rank: 1, generation: 1, detail: 'killed by SIGKILL' });
  snap = history.snapshot(state, {}, devices);
  assert.deepEqual(snap.workers.map((w) => [w.state, w.heartbeat_ms]), [['waiting', 1000], ['lost', 2000]], 'the last heartbeat is kept');
  assert.equal(snap.failures.length, 1);
  assert.match(snap.failures[0]!.reason, /rank 1/);
  // The survivor re-registers under its old id, the restarted process under a new one.
  feed({ type: 'worker-registered', workerId: 'h/10', requestedRank: 0, endpoint: 'tcp://h:3' });
  feed({ type: 'worker-registered', workerId: 'h/12', requestedRank: 1, endpoint: 'tcp://h:4' });
  snap = history.snapshot(state, {}, devices);
  assert.equal(snap.generation, 2);
  assert.deepEqual(snap.workers.map((w) => [w.pid, w.state, w.restarts]), [[10, 'running', 0], [12, 'running', 1]]);
  assert.deepEqual(snap.generations.map((g) => [g.generation, g.workers, g.step, g.from]), [[1, 2, 0, 'fresh'], [2, 2, 1, 'memory']]);
});

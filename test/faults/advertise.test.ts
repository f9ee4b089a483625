// Multi-host without --advertise, as it was found: workers on other hosts than their coordinator
// (network namespaces made here) used to advertise 127.0.0.1, their peers dialled themselves, and
// the job failed minutes later blaming the peer. Now a worker advertises the address that reaches
// its coordinator, and an endpoint a peer cannot reach fails the step within the connect timeout,
// naming the endpoint and who cannot reach it, long before the all-reduce timeout.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { initBackend } from '../../src/backend/select.js';
import { toYaml } from '../../src/config/index.js';
import { tinyConfig, tinyLmRun, tmpDir } from '../train/helpers.js';
import { makeNet, netnsUnavailable } from './netns.js';
import { allExit, manualJob } from './procs.js';

const why = netnsUnavailable();
await initBackend('wasm');
const dir = why ? '' : await tinyLmRun();

function config(sets: string[]): string {
  const file = path.join(tmpDir('advertise'), 'run.yaml');
  fs.writeFileSync(file, toYaml(tinyConfig(dir, { batch: { global: 4, micro: 2 } }, ['distributed.heartbeat_timeout_s=20', 'distributed.allreduce_timeout_s=120', ...sets])));
  return file;
}

test('workers on other hosts than the coordinator, without --advertise, advertise the address that reaches it; the run completes', { skip: why ?? undefined, timeout: 300_000 }, async () => {
  const net = makeNet(2);
  try {
    const job = manualJob(net, config([]), tmpDir('advertise-out'), { token: 'advertise-token', advertise: false, maxSteps: 2 });
    assert.deepEqual(await allExit(job.all, 240_000), [], 'every process exits');
    for (const [r, w] of job.workers.entries()) {
      assert.equal(await w.exit, 0, w.stderr());
      assert.match(w.stderr(), new RegExp(`ZeroMQ endpoint tcp://10\\.77\\.0\\.${r + 2}:\\d+ .*the address this host reaches the coordinator from`));
    }
    assert.equal(await job.coordinator.exit, 0, job.coordinator.stderr());
  } finally {
    net.destroy();
  }
});

test('a peer advertising an address another rank cannot reach is named within the connect timeout, not after the all-reduce timeout', { skip: why ?? undefined, timeout: 300_000 }, async () => {
  const net = makeNet(2);
  try {
    // Rank 1 advertises loopback, as every worker did before: rank 0 dials its own host, where (every
    // worker binding the same --zmq-port, as the Kubernetes manifests do) its own ROUTER answers.
    const job = manualJob(net, config(['distributed.connect_timeout_s=4', 'distributed.max_failures=0']), tmpDir('advertise-out'), {
      token: 'advertise-token', advertise: false, maxSteps: 4, workerArgs: (r) => ['--zmq-port', '29500', ...(r === 1 ? ['--advertise', '127.0.0.1'] : [])],
    });
    assert.deepEqual(await allExit(job.all, 240_000), [], 'every process exits');
    const err = job.coordinator.stderr();
    const workers = job.workers.map((w, r) => `--- rank ${r}:\n${w.stderr()}`).join('\n');
    assert.equal(await job.coordinator.exit, 1, `${err}\n${workers}`);
    assert.match(err, /rank 1 advertised tcp:\/\/127\.0\.0\.1:\d+, which rank 0 cannot reach \((no connection within 4 s|it is rank 0.s own port)/, workers);
    const formed = job.coordinator.lineAt(/group formed/) as number;
    const failed = job.coordinator.lineAt(/cannot reach/) as number;
    assert.ok(failed - formed < 60_000, `named ${(failed - formed) / 1000} s after the group formed (the all-reduce timeout is 120 s)`);
  } finally {
    net.destroy();
  }
});

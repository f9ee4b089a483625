// Token holders attacking the coordinator, the way they were found: an independent gRPC client
// (Debian's python3-grpcio, test/fixtures/hostile/grpc_client.py) against a coordinator on loopback
// with real `onelora worker` processes. Each test failed on the code before the checks of
// coordinator/admission.ts: a forged commit published the attacker's adapter, a ghost Register
// pushed the real rank 1 out of its group, a second Control stream took a rank's commands, and
// every refused call was a log line.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { initBackend } from '../../src/backend/select.js';
import type { TrainSummary } from '../../src/train/loop.js';
import { logged, python, PYTHON, pythonUntilStopped, startCoordinator, startWorker } from '../fixtures/hostile/job.js';
import { tinyConfig, tinyLmRun, tmpDir } from '../train/helpers.js';

const NO_GRPC = spawnSync(PYTHON, ['-c', 'import grpc, google.protobuf'], { encoding: 'utf8' }).status === 0 ? false : `${PYTHON} has no grpc/protobuf (apt python3-grpcio python3-protobuf)`;

await initBackend('wasm');
const dir = await tinyLmRun();
const cfg = () => tinyConfig(dir, { batch: { global: 4, micro: 2 } }, ['distributed.allreduce_timeout_s=20']);
const TOKEN = 'hostile-test-token';
const STEPS = 2;

/** The run's outcome, or a rejection after `ms` (the old code hung on some of these attacks). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not end within ${ms / 1000} s`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

test('a forged CommitCheckpoint during the last step is refused; the published adapter is the real one', { skip: NO_GRPC, timeout: 240_000 }, async () => {
  const output = tmpDir('forged-commit');
  const fake = tmpDir('forged-adapter');
  fs.mkdirSync(path.join(fake, 'adapter'));
  fs.writeFileSync(path.join(fake, 'adapter', 'adapter_model.safetensors'), 'FORGED');
  fs.writeFileSync(path.join(fake, 'adapter', 'adapter_config.json'), '{}');
  const { c, lines, stopCapture } = await startCoordinator({ cfg: cfg(), workers: 2, output, token: TOKEN, maxSteps: STEPS });
  const target = `127.0.0.1:${c.port}`;
  const forge = (rank: number, p: string) => python<{ sent: number; accepted: number; refused: number }>('grpc_client.py',
    ['forge-commit', '--target', target, '--token', TOKEN, '--rank', String(rank), '--step', String(STEPS), '--path', p, '--samples-seen', String(4 * STEPS), '--seconds', '150', '--interval', '0.005']);
  // claimed rank 1 with the attacker's directory; claimed rank 0 with it; rank 0 with ../ into the run
  const forgers = [forge(1, fake), forge(0, fake), forge(0, path.join(output, 'checkpoints', '..', '..', path.basename(fake)))];
  try {
    const ws = [0, 1].map((r) => startWorker(c.port, TOKEN, r));
    const summary = await within(c.done, 180_000, 'the run');
    assert.equal(summary.steps, STEPS);
    for (const w of ws) assert.equal(await w.exit, 0, w.stderr());
    const seen = await Promise.all(forgers);
    for (const s of seen) {
      assert.ok(s.sent > 10, `the forger sent ${s.sent} commits`);
      assert.equal(s.accepted, 0, JSON.stringify(s));
    }
    const published = fs.readFileSync(path.join(output, 'adapter', 'adapter_model.safetensors'));
    const real = fs.readFileSync(path.join(output, 'checkpoints', `step-${STEPS}`, 'adapter', 'adapter_model.safetensors'));
    assert.notEqual(published.toString('latin1'), 'FORGED');
    assert.ok(published.equals(real), 'adapter/ is the copy of the real final checkpoint');
    assert.ok(lines.some((l) => /CommitCheckpoint refused: a commit must come from rank 0/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /CommitCheckpoint refused: a commit must name the checkpoint directory the coordinator expects/.test(l)));
  } finally {
    stopCapture();
    await c.shutdown();
  }
});

test('a ghost Register, a duplicate Register and a second Control stream cannot take a waiting or running worker\'s place', { skip: NO_GRPC, timeout: 240_000 }, async () => {
  const { c, lines, stopCapture } = await startCoordinator({ cfg: cfg(), workers: 2, output: tmpDir('ghosts'), token: TOKEN, maxSteps: STEPS, heartbeatTimeoutMs: 20_000, formTimeoutMs: 120_000 });
  const target = `127.0.0.1:${c.port}`;
  const ghost = (args: string[]) => python<{ registered: boolean; code?: string; rank?: number }>('grpc_client.py', ['ghost-register', '--target', target, '--token', TOKEN, '--seconds', '60', ...args]);
  try {
    const w0 = startWorker(c.port, TOKEN, 0);
    assert.ok(await logged(w0, /ZeroMQ endpoint/), w0.stderr());
    await sleep(2000); // its Register is in: rank 0 waits for the group
    // rank 0 again from a ghost (the old code moved it to rank 1, and the real rank 1 was surplus);
    // the real worker's identity with another endpoint (the old code orphaned the real Register)
    const registers = [ghost(['--rank', '0', '--hostname', 'ghost', '--pid', '4242']), ghost(['--rank', '0', '--hostname', os.hostname(), '--pid', String(w0.child.pid), '--endpoint', 'tcp://127.0.0.1:9'])];
    const [r1, r2] = await Promise.all(registers);
    // a second Control stream for rank 1, opened over and over from before the group forms until after the run
    const control = pythonUntilStopped<{ streams: number; refused: number; commands: Record<string, number> }>('grpc_client.py',
      ['ghost-control', '--target', target, '--token', TOKEN, '--rank', '1', '--generation', '1', '--seconds', '300', '--interval', '0.02']);
    const w1 = startWorker(c.port, TOKEN, 1);
    const summary: TrainSummary = await within(c.done, 180_000, 'the run');
    assert.equal(summary.steps, STEPS);
    for (const w of [w0, w1]) assert.equal(await w.exit, 0, w.stderr());
    for (const r of [r1, r2]) assert.deepEqual([r.registered, r.code], [false, 'ALREADY_EXISTS'], JSON.stringify(r));
    const ctl = await control.stop();
    assert.equal(ctl.commands.start ?? 0, 0, `the ghost stream took commands: ${JSON.stringify(ctl)}`);
    assert.equal(ctl.commands.stop ?? 0, 0, JSON.stringify(ctl));
    assert.ok(ctl.refused > 0, JSON.stringify(ctl));
    assert.ok(lines.some((l) => /Register refused: rank 0 is already asked for by a waiting worker/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /Register refused: this worker identity is already registered with another endpoint/.test(l)));
    assert.ok(lines.some((l) => /Control stream refused: rank 1 registered over another connection/.test(l)));
  } finally {
    stopCapture();
    await c.shutdown();
  }
});

test('a flood of wrong-token calls gives a bounded number of log lines, summarised with the count', { skip: NO_GRPC, timeout: 120_000 }, async () => {
  const { c, lines, stopCapture } = await startCoordinator({ cfg: cfg(), workers: 1, output: tmpDir('flood'), token: TOKEN });
  try {
    const rss0 = process.memoryUsage().rss;
    const r = await python<{ sent: number; refused: number; per_second: number }>('grpc_client.py', ['flood', '--target', `127.0.0.1:${c.port}`, '--token', 'wrong', '--seconds', '8']);
    assert.ok(r.refused > 500 && r.refused === r.sent, JSON.stringify(r));
    // the summary comes at the end of the 10 s window
    for (let i = 0; i < 150 && !lines.some((l) => /more refused in the last/.test(l)); i++) await sleep(100);
    const refusals = lines.filter((l) => /wrong job token/.test(l));
    assert.ok(refusals.length >= 2 && refusals.length <= 4, `${refusals.length} log lines for ${r.refused} refused calls:\n${refusals.join('\n')}`);
    const total = refusals.map((l) => Number(/: (\d+) more refused/.exec(l)?.[1] ?? 0)).reduce((a, b) => a + b, 0);
    assert.ok(total >= r.refused - 1 - 64 && total <= r.refused, `summaries count ${total} of ${r.refused}`);
    process.stdout.write(`# ${r.refused} refused calls (${r.per_second}/s) → ${refusals.length} log lines; RSS ${Math.round(rss0 / 2 ** 20)} → ${Math.round(process.memoryUsage().rss / 2 ** 20)} MiB\n`);
  } finally {
    stopCapture();
    await c.shutdown();
  }
});

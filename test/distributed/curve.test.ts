// ZeroMQ CURVE through the CLI path: `launch --zmq-curve` starts every worker with a keypair of its
// own; the public keys travel through Register and the coordinator's reply, the links are encrypted,
// and the run completes. A worker whose CURVE setting differs from the coordinator's is refused.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as zmq from 'zeromq';
import { initBackend } from '../../src/backend/select.js';
import { CoordinatorClient } from '../../src/comm/proto.js';
import { launch } from '../../coordinator/launcher.js';
import { Coordinator } from '../../coordinator/server.js';
import { tinyConfig, tinyLmRun, tmpDir } from '../train/helpers.js';

const NO_CURVE = zmq.capability.curve ? false : 'this libzmq was built without CURVE';

await initBackend('wasm');
const dir = await tinyLmRun();
const cfg = () => tinyConfig(dir, { batch: { global: 4, micro: 2 } }, ['distributed.allreduce_timeout_s=20']);

test('launch --workers 2 with CURVE: the run completes, gradients crossed the encrypted links', { skip: NO_CURVE }, async () => {
  const logDir = tmpDir('samples');
  const output = tmpDir('curve');
  const r = await launch({ cfg: cfg(), workers: 2, output, maxSteps: 2, quiet: true, backend: 'wasm', curve: true, env: { ONELORA_SAMPLE_LOG: logDir, ONELORA_LOG: 'warn' } });
  assert.equal(r.summary.steps, 2);
  assert.equal(r.restarts, 0);
  const lines = fs.readdirSync(logDir).flatMap((f) => fs.readFileSync(path.join(logDir, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; sample_ids: number[]; bytes_received: number }));
  for (const step of [1, 2]) assert.equal(new Set(lines.filter((l) => l.step === step).flatMap((l) => l.sample_ids)).size, 4);
  assert.ok(lines.every((l) => l.bytes_received > 0));
});

test('onelora worker without --zmq-curve against a CURVE job exits 2 naming the flag', async () => {
  const c = new Coordinator({ cfg: cfg(), workers: 1, output: tmpDir('curve-cli'), token: 't', bind: '127.0.0.1:0', quiet: true, curve: true });
  await c.start();
  try {
    const bin = new URL('../../bin/onelora.js', import.meta.url).pathname;
    const child = spawn(process.execPath, [bin, 'worker', '--coordinator', `127.0.0.1:${c.port}`, '--zmq-port', '0', '--backend', 'wasm'], { env: { ...process.env, ONELORA_JOB_TOKEN: 't', ONELORA_LOG: 'warn', ONELORA_ZMQ_CURVE: '' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 2, stderr);
    assert.match(stderr, /start the worker with --zmq-curve/);
  } finally {
    await c.shutdown();
  }
});

test('a coordinator with --zmq-curve refuses a plaintext worker, and one without refuses a CURVE worker', async () => {
  for (const curve of [true, false]) {
    const c = new Coordinator({ cfg: cfg(), workers: 1, output: tmpDir('curve-refuse'), token: 't', bind: '127.0.0.1:0', quiet: true, curve });
    await c.start();
    const client = new CoordinatorClient(`127.0.0.1:${c.port}`, 't');
    try {
      await assert.rejects(client.register({ requested_rank: 0, zmq_endpoint: 'tcp://127.0.0.1:1', hostname: 'h', pid: 1, device: 'x', curve_public_key: curve ? '' : 'K' }, 5000),
        (e: grpc.ServiceError) => e.code === grpc.status.INVALID_ARGUMENT && /--zmq-curve/.test(e.details));
    } finally {
      client.close();
      await c.shutdown();
    }
  }
});

// Optional TLS on the control plane: a self-signed certificate made here with openssl, a coordinator
// in this process serving TLS, a real `onelora worker --tls-ca` process that registers and trains,
// a plaintext client refused; unreadable PEM files are a user error (exit 2) naming flag and file.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { initBackend } from '../../src/backend/select.js';
import { CoordinatorClient } from '../../src/comm/proto.js';
import { clientCredentials, serverCredentials } from '../../src/comm/tls.js';
import { Coordinator } from '../../coordinator/server.js';
import { tmpDir } from '../helpers.js';
import { tinyConfig, tinyLmRun } from '../train/helpers.js';

const BIN = new URL('../../bin/onelora.js', import.meta.url).pathname;
const openssl = spawnSync('openssl', ['version'], { encoding: 'utf8' });
const NO_OPENSSL = openssl.status === 0 ? false : 'openssl is not on PATH: cannot make a self-signed certificate for the TLS test';

function selfSigned(): { cert: string; key: string } {
  const d = tmpDir('tls');
  const cert = path.join(d, 'cert.pem');
  const key = path.join(d, 'key.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
    '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return { cert, key };
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string }> {
  // spawn, not spawnSync: a coordinator answering the child may live in this process's event loop
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ONELORA_JOB_TOKEN: 'tok', ONELORA_LOG: 'warn', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
}

test('a TLS coordinator: a worker with --tls-ca registers and trains; a plaintext client is refused', { skip: NO_OPENSSL }, async () => {
  await initBackend('wasm');
  const dir = await tinyLmRun();
  const { cert, key } = selfSigned();
  const { credentials, tls } = serverCredentials({ tlsCert: cert, tlsKey: key }, {});
  assert.ok(tls);
  const cfg = tinyConfig(dir, { batch: { global: 4, micro: 2 } });
  const c = new Coordinator({ cfg, workers: 1, output: tmpDir('tls-run'), token: 'tok', bind: '127.0.0.1:0', maxSteps: 2, quiet: true, credentials });
  await c.start();
  try {
    const plain = new CoordinatorClient(`127.0.0.1:${c.port}`, 'tok');
    await assert.rejects(plain.register({ requested_rank: 0, zmq_endpoint: 'tcp://127.0.0.1:1', hostname: 'h', pid: 1, device: 'x', curve_public_key: '' }, 3000),
      (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE || e.code === grpc.status.DEADLINE_EXCEEDED);
    plain.close();
    const worker = cli(['worker', '--coordinator', `127.0.0.1:${c.port}`, '--zmq-port', '0', '--backend', 'wasm', '--tls-ca', cert]);
    const summary = await c.done;
    assert.equal(summary.steps, 2);
    const w = await worker;
    assert.equal(w.code, 0, w.stderr);
    assert.doesNotMatch(w.stderr, /heartbeat thread failed|heartbeats to .* are failing/, 'the heartbeat thread reaches the TLS coordinator too');
  } finally {
    await c.shutdown();
  }
});

test('mutual TLS (coordinator --tls-ca): a client without a certificate is refused, one with a certificate signed by the CA registers', { skip: NO_OPENSSL }, async () => {
  await initBackend('wasm');
  const dir = await tinyLmRun();
  // A self-signed certificate is its own CA: the same pair serves as server and client certificate.
  const { cert, key } = selfSigned();
  const { credentials, mutual } = serverCredentials({ tlsCert: cert, tlsKey: key, tlsCa: cert }, {});
  assert.ok(mutual);
  const c = new Coordinator({ cfg: tinyConfig(dir, { batch: { global: 4, micro: 2 } }), workers: 1, output: tmpDir('mtls'), token: 'tok', bind: '127.0.0.1:0', quiet: true, credentials });
  await c.start();
  const req = { requested_rank: 0, zmq_endpoint: 'tcp://127.0.0.1:1', hostname: 'h', pid: 1, device: 'x', curve_public_key: '' };
  const anonymous = new CoordinatorClient(`127.0.0.1:${c.port}`, 'tok', { credentials: clientCredentials({ tlsCa: cert }, {}).credentials });
  const known = new CoordinatorClient(`127.0.0.1:${c.port}`, 'tok', { credentials: clientCredentials({ tlsCa: cert, tlsCert: cert, tlsKey: key }, {}).credentials });
  try {
    await assert.rejects(anonymous.register(req, 3000), (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE || e.code === grpc.status.DEADLINE_EXCEEDED);
    const reply = await known.register(req, 10_000);
    assert.equal(reply.world_size, 1);
  } finally {
    anonymous.close();
    known.close();
    await c.shutdown();
  }
});

test('unreadable TLS files are a user error naming the flag (or variable) and the file', async () => {
  const missing = path.join(tmpDir('tls-missing'), 'nope.pem');
  const [coord, worker, env] = await Promise.all([
    cli(['coordinator', '--config', 'unused.yaml', '--workers', '1', '--output', tmpDir('o'), '--tls-cert', missing, '--tls-key', missing]),
    cli(['worker', '--coordinator', '127.0.0.1:1', '--tls-ca', missing]),
    cli(['worker', '--coordinator', '127.0.0.1:1'], { ONELORA_TLS_CA: missing }),
  ]);
  assert.equal(coord.code, 2, coord.stderr);
  assert.ok(coord.stderr.includes(`--tls-cert ${missing}: cannot read it`), coord.stderr);
  assert.equal(worker.code, 2, worker.stderr);
  assert.ok(worker.stderr.includes(`--tls-ca ${missing}: cannot read it`), worker.stderr);
  assert.equal(env.code, 2, env.stderr);
  assert.ok(env.stderr.includes(`ONELORA_TLS_CA ${missing}: cannot read it`), env.stderr);
});

test('a key without a certificate, or a CA alone on the coordinator, is refused', () => {
  assert.throws(() => serverCredentials({ tlsKey: 'k.pem' }, {}), /--tls-key given without --tls-cert/);
  assert.throws(() => serverCredentials({}, { ONELORA_TLS_CA: 'ca.pem' }), /ONELORA_TLS_CA given without --tls-cert/);
  assert.equal(serverCredentials({}, {}).tls, false);
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  CoordinatorClient,
  MESSAGE_FIELDS,
  PROTO_PACKAGE,
  addCoordinatorService,
  bindServer,
  loadPackageDefinition,
  type Command,
  type CoordinatorHandlers,
  type MicroBatch,
} from '../../src/comm/proto.js';

interface Descriptor { field: { name: string }[] }

void describe('proto/onelora.proto and its TypeScript mirror', () => {
  const def = loadPackageDefinition();
  const messages = Object.keys(def).filter((k) => k.startsWith(`${PROTO_PACKAGE}.`) && 'type' in def[k] && !('format' in def[k] && def[k].format !== 'Protocol Buffer 3 DescriptorProto'));

  void it('every message of the .proto has a TypeScript interface with exactly its fields', () => {
    const protoMessages = messages
      .map((k) => k.slice(PROTO_PACKAGE.length + 1))
      .filter((name) => !name.includes('.')) // map entry types are nested (StepReport.MetricsEntry)
      .sort();
    assert.deepEqual(protoMessages, Object.keys(MESSAGE_FIELDS).sort());
    for (const [name, fields] of Object.entries(MESSAGE_FIELDS)) {
      const desc = (def[`${PROTO_PACKAGE}.${name}`] as unknown as { type: Descriptor }).type;
      assert.deepEqual(desc.field.map((f) => f.name).sort(), Object.keys(fields).sort(), `fields of ${name}`);
    }
  });

  void it('every request message carries the job token', () => {
    for (const name of ['RegisterRequest', 'HeartbeatRequest', 'BatchesRequest', 'StepReport', 'FailureReport', 'CheckpointCommit', 'ControlRequest'] as const) {
      assert.ok('token' in MESSAGE_FIELDS[name], name);
    }
  });
});

const batch = (i: number): MicroBatch => ({
  step: 7, micro_index: i, accumulation_steps: 2, arrow_ipc: Buffer.from([1, 2, 3, i]), sample_ids: [10 + i, 2 ** 40 + i],
  global_label_count: 1234, global_batch_size: 8,
});

const handlers: CoordinatorHandlers = {
  register: (r) => Promise.resolve({
    rank: Math.max(0, r.requested_rank), world_size: 2, generation: 1, peer_endpoints: ['tcp://a:1', r.zmq_endpoint],
    job_spec_json: '{}', config_hash: 'abc', resume: { step: 0, samples_seen: 0, epoch: 0, checkpoint_dir: '' },
    peer_curve_public_keys: ['', r.curve_public_key],
  }),
  heartbeat: (r) => Promise.resolve({ generation: r.generation }),
  reportStep: (r) => Promise.resolve({ ok: !r.nan, message: r.nan ? 'nan' : `loss ${r.loss} ${r.metrics.acc}`, generation: r.generation }),
  reportFailure: () => Promise.resolve({ ok: true, message: '', generation: 1 }),
  commitCheckpoint: (r) => Promise.resolve({ ok: r.checksums['a.safetensors'] === 'ff', message: '', generation: 1 }),
  batches: async function* () {
    yield batch(0);
    yield batch(1);
  },
  control: async function* () {
    yield { generation: 1, kind: 'start', start: { step: 1, samples_seen: 0, checkpoint: false } } as Command;
    yield { generation: 1, kind: 'stop', stop: { reason: 'done', failed: false } } as Command;
  },
};

void describe('Coordinator service over gRPC on 127.0.0.1', () => {
  void it('round-trips every call kind with the token; a wrong token is UNAUTHENTICATED', async () => {
    const server = new grpc.Server();
    addCoordinatorService(server, 'tok', handlers);
    const port = await bindServer(server, '127.0.0.1:0');
    const client = new CoordinatorClient(`127.0.0.1:${port}`, 'tok');
    const intruder = new CoordinatorClient(`127.0.0.1:${port}`, 'nope');
    try {
      const reply = await client.register({ requested_rank: 1, zmq_endpoint: 'tcp://b:2', hostname: 'h', pid: 1, device: 'wasm', curve_public_key: 'K' });
      assert.deepEqual(reply.peer_endpoints, ['tcp://a:1', 'tcp://b:2']);
      assert.deepEqual(reply.peer_curve_public_keys, ['', 'K']);
      assert.equal(reply.rank, 1);
      assert.deepEqual(reply.resume, { step: 0, samples_seen: 0, epoch: 0, checkpoint_dir: '' });
      const ack = await client.reportStep({
        rank: 1, generation: 1, step: 1, loss: 2.5, metrics: { acc: 0.5 }, nan: false, samples: 4, examples_json: '',
        timing: { data_wait_s: 0.1, compute_s: 1, allreduce_s: 0.01, optimizer_s: 0.001 },
      });
      assert.deepEqual(ack, { ok: true, message: 'loss 2.5 0.5', generation: 1 });
      const ck = await client.commitCheckpoint({ rank: 0, generation: 1, step: 2, path: 'p', checksums: { 'a.safetensors': 'ff' }, samples_seen: 8, epoch: 0 });
      assert.equal(ck.ok, true);

      const got: MicroBatch[] = [];
      for await (const b of client.batches({ rank: 1, generation: 1, step: 7 })) got.push(b);
      assert.deepEqual(got.map((b) => [b.micro_index, [...b.arrow_ipc], b.sample_ids]), [[0, [1, 2, 3, 0], [10, 2 ** 40]], [1, [1, 2, 3, 1], [11, 2 ** 40 + 1]]]);

      const cmds: string[] = [];
      for await (const c of client.control({ rank: 1, generation: 1 })) cmds.push(c.kind);
      assert.deepEqual(cmds, ['start', 'stop']);

      await assert.rejects(intruder.heartbeat({ rank: 0, generation: 1, step: 0 }), (err: grpc.ServiceError) => err.code === grpc.status.UNAUTHENTICATED);
      await assert.rejects(async () => {
        for await (const _ of intruder.batches({ rank: 0, generation: 1, step: 0 })) assert.fail('no batch for a wrong token');
      }, (err: grpc.ServiceError) => err.code === grpc.status.UNAUTHENTICATED);
    } finally {
      client.close();
      intruder.close();
      server.forceShutdown();
    }
  });
});

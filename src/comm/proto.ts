// Typed access to proto/onelora.proto, which stays the single source of truth: it is loaded at run
// time with @grpc/proto-loader, and the interfaces below mirror its messages by hand (keepCase, so
// snake_case; 64-bit integers as number; defaults filled in). MESSAGE_FIELDS lists every field of
// every interface — the compiler checks it against the interfaces, a test checks it against the
// .proto — so the two cannot drift apart silently.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { UserError, messageOf } from '../errors.js';
import { installPath } from '../install.js';
import { childLog } from '../log.js';
import { RefusalLog } from './refusals.js';

const log = childLog('grpc');

const PROTO_PATH = installPath('proto', 'onelora.proto');
export const PROTO_PACKAGE = 'onelora.v1';
const TOKEN_METADATA_KEY = 'x-onelora-token';

/** The error of a coordinator or worker started without the job token, with how to make one. */
export const MISSING_TOKEN = 'ONELORA_JOB_TOKEN is not set: the job token is required, the same for the coordinator and every worker (make one with: export ONELORA_JOB_TOKEN=$(openssl rand -hex 24))';

const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

export interface RegisterRequest { token: string; requested_rank: number; zmq_endpoint: string; hostname: string; pid: number; device: string; curve_public_key: string }
export interface ResumeState { step: number; samples_seen: number; epoch: number; checkpoint_dir: string }
export interface RegisterReply {
  rank: number;
  world_size: number;
  generation: number;
  peer_endpoints: string[];
  job_spec_json: string;
  config_hash: string;
  resume: ResumeState | null;
  peer_curve_public_keys: string[];
}
export interface HeartbeatRequest { token: string; rank: number; generation: number; step: number }
export interface HeartbeatReply { generation: number }
export interface BatchesRequest { token: string; rank: number; generation: number; step: number }
export interface MicroBatch {
  step: number;
  micro_index: number;
  accumulation_steps: number;
  arrow_ipc: Buffer;
  sample_ids: number[];
  global_label_count: number;
  global_batch_size: number;
}
export interface StepTiming { data_wait_s: number; compute_s: number; allreduce_s: number; optimizer_s: number }
export interface StepReport {
  token: string;
  rank: number;
  generation: number;
  step: number;
  loss: number;
  metrics: Record<string, number>;
  timing: StepTiming | null;
  nan: boolean;
  samples: number;
  /** Rank 0's held-out examples, JSON `{before?, after?}`; '' on other ranks and steps. */
  examples_json: string;
}
/** `kind`: '' a lost peer or failed step; 'config' a wrong input (exit 2); 'disk-write' a checkpoint the output disk refused. */
export interface FailureReport { token: string; rank: number; generation: number; step: number; late_rank: number; message: string; kind: '' | 'config' | 'disk-write' }
export interface CheckpointCommit {
  token: string;
  rank: number;
  generation: number;
  step: number;
  path: string;
  checksums: Record<string, string>;
  samples_seen: number;
  epoch: number;
}
export interface Ack { ok: boolean; message: string; generation: number }
export interface ControlRequest { token: string; rank: number; generation: number }
export interface StartStep { step: number; samples_seen: number; checkpoint: boolean }
export interface AbortStep { step: number; reason: string }
export interface Restore { reason: string; resume: ResumeState | null }
export interface Stop { reason: string; failed: boolean; checkpoint?: ResumeState | null }
/** `kind` is proto-loader's virtual oneof field: the name of the member that is set. */
export type Command = { generation: number } & (
  | { kind: 'start'; start: StartStep }
  | { kind: 'abort'; abort: AbortStep }
  | { kind: 'restore'; restore: Restore }
  | { kind: 'stop'; stop: Stop }
);

type FieldSet<T> = { readonly [K in keyof T]-?: true };
type CommandFields = FieldSet<{ generation: 0; start: 0; abort: 0; restore: 0; stop: 0 }>;

/** Every field of every message, as the TypeScript side sees it (compared with the .proto by a test). */
export const MESSAGE_FIELDS = {
  RegisterRequest: { token: true, requested_rank: true, zmq_endpoint: true, hostname: true, pid: true, device: true, curve_public_key: true } satisfies FieldSet<RegisterRequest>,
  ResumeState: { step: true, samples_seen: true, epoch: true, checkpoint_dir: true } satisfies FieldSet<ResumeState>,
  RegisterReply: { rank: true, world_size: true, generation: true, peer_endpoints: true, job_spec_json: true, config_hash: true, resume: true, peer_curve_public_keys: true } satisfies FieldSet<RegisterReply>,
  HeartbeatRequest: { token: true, rank: true, generation: true, step: true } satisfies FieldSet<HeartbeatRequest>,
  HeartbeatReply: { generation: true } satisfies FieldSet<HeartbeatReply>,
  BatchesRequest: { token: true, rank: true, generation: true, step: true } satisfies FieldSet<BatchesRequest>,
  MicroBatch: {
    step: true, micro_index: true, accumulation_steps: true, arrow_ipc: true, sample_ids: true, global_label_count: true, global_batch_size: true,
  } satisfies FieldSet<MicroBatch>,
  StepTiming: { data_wait_s: true, compute_s: true, allreduce_s: true, optimizer_s: true } satisfies FieldSet<StepTiming>,
  StepReport: {
    token: true, rank: true, generation: true, step: true, loss: true, metrics: true, timing: true, nan: true, samples: true, examples_json: true,
  } satisfies FieldSet<StepReport>,
  FailureReport: { token: true, rank: true, generation: true, step: true, late_rank: true, message: true, kind: true } satisfies FieldSet<FailureReport>,
  CheckpointCommit: {
    token: true, rank: true, generation: true, step: true, path: true, checksums: true, samples_seen: true, epoch: true,
  } satisfies FieldSet<CheckpointCommit>,
  Ack: { ok: true, message: true, generation: true } satisfies FieldSet<Ack>,
  ControlRequest: { token: true, rank: true, generation: true } satisfies FieldSet<ControlRequest>,
  StartStep: { step: true, samples_seen: true, checkpoint: true } satisfies FieldSet<StartStep>,
  AbortStep: { step: true, reason: true } satisfies FieldSet<AbortStep>,
  Restore: { reason: true, resume: true } satisfies FieldSet<Restore>,
  Stop: { reason: true, failed: true, checkpoint: true } satisfies FieldSet<Stop>,
  Command: { generation: true, start: true, abort: true, restore: true, stop: true } satisfies CommandFields,
} as const;

/** Requests without the token: the client helper fills it in (and sends it as metadata too). */
type Req<T> = Omit<T, 'token'>;

export function loadPackageDefinition(): protoLoader.PackageDefinition {
  return protoLoader.loadSync(PROTO_PATH, LOADER_OPTIONS);
}

function coordinatorService(): grpc.ServiceClientConstructor {
  const pkg = grpc.loadPackageDefinition(loadPackageDefinition());
  const v1 = (pkg.onelora as grpc.GrpcObject).v1 as grpc.GrpcObject;
  return v1.Coordinator as grpc.ServiceClientConstructor;
}

// ---- client ----------------------------------------------------------------------------------

type UnaryFn = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;
type StreamFn = (req: unknown, md: grpc.Metadata, opts?: grpc.CallOptions) => grpc.ClientReadableStream<unknown>;

export interface ClientOptions {
  credentials?: grpc.ChannelCredentials;
  /** Deadline of each unary call, ms (Register waits for the whole group: give it more). */
  deadlineMs?: number;
  /**
   * Longest wait between the channel's reconnection attempts, ms (default 5 s). grpc-js backs off
   * up to 120 s by default, so a worker that kept retrying a coordinator not yet started would find
   * it up only minutes later; the worker's own retries (worker --connect-timeout) do the pacing.
   */
  maxReconnectBackoffMs?: number;
}

/** The worker's side: every call carries the token in the request and in `x-onelora-token`. */
export class CoordinatorClient {
  private readonly raw: grpc.Client;
  private readonly deadlineMs: number;

  constructor(address: string, private readonly token: string, opts: ClientOptions = {}) {
    const Service = coordinatorService();
    const backoff = opts.maxReconnectBackoffMs ?? 5000;
    this.raw = new Service(address, opts.credentials ?? grpc.credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': Math.min(500, backoff),
      'grpc.max_reconnect_backoff_ms': backoff,
    });
    this.deadlineMs = opts.deadlineMs ?? 30_000;
  }

  register(req: Req<RegisterRequest>, deadlineMs?: number): Promise<RegisterReply> {
    return this.unary('Register', req, deadlineMs);
  }
  heartbeat(req: Req<HeartbeatRequest>): Promise<HeartbeatReply> {
    return this.unary('Heartbeat', req);
  }
  reportStep(req: Req<StepReport>): Promise<Ack> {
    return this.unary('ReportStep', req);
  }
  reportFailure(req: Req<FailureReport>): Promise<Ack> {
    return this.unary('ReportFailure', req);
  }
  commitCheckpoint(req: Req<CheckpointCommit>): Promise<Ack> {
    return this.unary('CommitCheckpoint', req);
  }
  /** The step's micro-batches; iterate with for await. */
  batches(req: Req<BatchesRequest>): AsyncIterable<MicroBatch> & { cancel(): void } {
    return this.stream<MicroBatch>('Batches', req);
  }
  /** The coordinator's commands for this generation; cancel() ends the stream from this side. */
  control(req: Req<ControlRequest>): AsyncIterable<Command> & { cancel(): void } {
    return this.stream<Command>('Control', req);
  }
  close(): void {
    this.raw.close();
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(TOKEN_METADATA_KEY, this.token);
    return md;
  }

  private unary<T>(method: string, req: object, deadlineMs?: number): Promise<T> {
    const fn = (this.raw as unknown as Record<string, UnaryFn>)[method].bind(this.raw);
    const deadline = Date.now() + (deadlineMs ?? this.deadlineMs);
    return new Promise<T>((resolve, reject) => {
      fn({ ...req, token: this.token }, this.metadata(), { deadline }, (err, res) => (err ? reject(err) : resolve(res as T)));
    });
  }

  private stream<T>(method: string, req: object): AsyncIterable<T> & { cancel(): void } {
    const fn = (this.raw as unknown as Record<string, StreamFn>)[method].bind(this.raw);
    const call = fn({ ...req, token: this.token }, this.metadata());
    return {
      cancel: () => call.cancel(),
      [Symbol.asyncIterator]: () => (call as unknown as AsyncIterable<T>)[Symbol.asyncIterator](),
    };
  }
}

// ---- server ----------------------------------------------------------------------------------

/**
 * The coordinator's side: handlers see checked requests (the token already verified) and only
 * translate between messages and the state machine. A UserError becomes INVALID_ARGUMENT, any
 * other error INTERNAL; streaming handlers get a signal that aborts when the client goes away.
 * `peer` is the caller's connection as gRPC names it (`ipv4:10.0.0.5:41234`): one client channel
 * keeps one connection, so a worker's Register and Control come from the same peer.
 */
export interface CoordinatorHandlers {
  register(req: RegisterRequest, peer: string): Promise<RegisterReply>;
  heartbeat(req: HeartbeatRequest): Promise<HeartbeatReply>;
  reportStep(req: StepReport): Promise<Ack>;
  reportFailure(req: FailureReport): Promise<Ack>;
  commitCheckpoint(req: CheckpointCommit, peer: string): Promise<Ack>;
  batches(req: BatchesRequest, signal: AbortSignal): AsyncIterable<MicroBatch>;
  control(req: ControlRequest, signal: AbortSignal, peer: string): AsyncIterable<Command>;
}

/** A RunError-like refusal with its gRPC status, for handlers that turn a call away. */
export function refusal(code: grpc.status, message: string): grpc.ServiceError {
  return Object.assign(new Error(message), { code, details: message, metadata: new grpc.Metadata() });
}

type Call = { request: { token?: string }; metadata: grpc.Metadata; getPeer(): string };

/** Wrong-token calls of every server in this process: counted and summarised, not one line each. */
const refusedTokens = new RefusalLog(log);

function authError(call: Call, token: string): grpc.ServiceError | null {
  const md = call.metadata.get(TOKEN_METADATA_KEY)[0];
  if (md === token && call.request.token === token) return null;
  refusedTokens.refuse('refused a control-plane call with a missing or wrong job token', call.getPeer());
  return refusal(grpc.status.UNAUTHENTICATED, 'wrong or missing job token');
}

function toServiceError(err: unknown): grpc.ServiceError {
  if (err instanceof Error && typeof (err as Partial<grpc.ServiceError>).code === 'number' && 'metadata' in err) return err as grpc.ServiceError;
  const code = err instanceof UserError ? grpc.status.INVALID_ARGUMENT : grpc.status.INTERNAL;
  return refusal(code, messageOf(err));
}

function unaryHandler<Q, A>(token: string, fn: (req: Q, peer: string) => Promise<A>): grpc.handleUnaryCall<Q, A> {
  return (call, callback) => {
    const denied = authError(call as unknown as Call, token);
    if (denied) return callback(denied);
    fn(call.request, call.getPeer()).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toServiceError(err)),
    );
  };
}

function streamHandler<Q, A>(token: string, fn: (req: Q, signal: AbortSignal, peer: string) => AsyncIterable<A>): grpc.handleServerStreamingCall<Q, A> {
  return (call) => {
    const denied = authError(call as unknown as Call, token);
    if (denied) return void call.emit('error', denied);
    const ac = new AbortController();
    call.on('cancelled', () => ac.abort());
    void (async () => {
      try {
        for await (const msg of fn(call.request, ac.signal, call.getPeer())) {
          if (ac.signal.aborted) return;
          if (!call.write(msg)) await new Promise((r) => call.once('drain', r));
        }
        call.end();
      } catch (err) {
        if (!ac.signal.aborted) call.emit('error', toServiceError(err));
      }
    })();
  };
}

export function addCoordinatorService(server: grpc.Server, token: string, h: CoordinatorHandlers): void {
  if (!token) throw new UserError('a job token is required (ONELORA_JOB_TOKEN)');
  server.addService(coordinatorService().service, {
    Register: unaryHandler(token, (r: RegisterRequest, peer) => h.register(r, peer)),
    Heartbeat: unaryHandler(token, (r: HeartbeatRequest) => h.heartbeat(r)),
    ReportStep: unaryHandler(token, (r: StepReport) => h.reportStep(r)),
    ReportFailure: unaryHandler(token, (r: FailureReport) => h.reportFailure(r)),
    CommitCheckpoint: unaryHandler(token, (r: CheckpointCommit, peer) => h.commitCheckpoint(r, peer)),
    Batches: streamHandler(token, (r: BatchesRequest, s) => h.batches(r, s)),
    Control: streamHandler(token, (r: ControlRequest, s, peer) => h.control(r, s, peer)),
  });
}

/** Binds a server on `address` (host:port, port 0 for any) and resolves with the bound port. */
export function bindServer(server: grpc.Server, address: string, credentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

/** Closes a gRPC server gracefully (open streams may finish), forcibly after `forceMs`. */
export function closeServer(server: grpc.Server, forceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const force = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, forceMs);
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
}

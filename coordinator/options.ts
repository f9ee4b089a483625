// What a Coordinator (server.ts) is started with: the run, the group's size and where it writes,
// the job token, and the knobs of its timeouts, security and failure policy.
import type * as grpc from '@grpc/grpc-js';
import type { RunConfig } from '../src/config/index.js';
import type { FailurePolicy } from './policy.js';

export interface CoordinatorOptions {
  cfg: RunConfig;
  workers: number;
  output: string;
  token: string;
  /** host:port; port 0 picks a free one (default 127.0.0.1:29400). */
  bind?: string;
  resume?: boolean;
  /** With `resume`: an output that holds no run yet starts one (`coordinator --resume`, as a Kubernetes Job runs it every time). */
  firstStart?: boolean;
  /** A fresh run into a directory holding one deletes that run's files first (else refused, naming `resumeHint`). */
  overwrite?: boolean;
  resumeHint?: string;
  /** Aborted (Ctrl-C): stop at the next step boundary with a checkpoint; `done` rejects with InterruptedError. */
  signal?: AbortSignal;
  maxSteps?: number;
  metricsPort?: number;
  quiet?: boolean;
  /** false: no TensorBoard event files under output/tensorboard/ (--no-tensorboard). */
  tensorboard?: boolean;
  /**
   * A rank silent this long is declared lost (default distributed.heartbeat_timeout_s, 30 s). Workers beat from their own thread
   * (worker/heartbeat.ts) but only from the main thread while that loads, and 10 s gave false
   * losses then on a loaded 2-core machine (docs/performance.md); a dead process is noticed
   * sooner, by its closed stream or the launcher's exit event.
   */
  heartbeatTimeoutMs?: number;
  /** How long a group may take to (re-)form (default distributed.form_timeout_s, 300 s). */
  formTimeoutMs?: number;
  /** Require ZeroMQ CURVE of every worker (--zmq-curve): each registers its public key, the reply lists them all. */
  curve?: boolean;
  /** gRPC server credentials (src/comm/tls.ts); insecure by default. */
  credentials?: grpc.ServerCredentials;
  /**
   * Which worker identities (`hostname/pid`) may register: `launch` admits only the processes it
   * started. Unset: any caller with the token (the workers of a job started by hand).
   */
  admit?: (workerId: string) => boolean;
  /** What a lost worker means; built once from the config (failurePolicyFor) when not given. */
  policy?: FailurePolicy;
}

// The worker's heartbeat, on its own thread (like torchelastic's agent beside the trainer): a
// training step is synchronous tfjs work that can hold the main thread for minutes on a large model,
// and a heartbeat timer there would fall silent exactly while the worker is busiest. This thread
// has its own gRPC channel to the coordinator and beats once a second with the last (rank,
// generation, step) the main thread posted. A main thread that hangs for good is caught elsewhere:
// its peers' all-reduce times out and names it (src/comm/allreduce.ts), and a dead process closes
// its control stream.
//
// The thread is also how a worker notices that it lost its coordinator: a partition drops packets
// without closing anything, so the Control stream and a pending Register would wait forever. The
// thread keeps beating between groups too (a probe of generation 0, which the coordinator answers
// and ignores), and once the coordinator has answered at least once, `lostAfterMs` without an
// answer is reported to the main thread, which exits naming the coordinator.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { clientCredentials, type TlsFlags } from '../src/comm/tls.js';
import { CoordinatorClient } from '../src/comm/proto.js';
import { heartbeatThreadEntry } from '../src/install.js';

export interface HeartbeatConfig {
  coordinator: string;
  token: string;
  tls: TlsFlags;
  intervalMs: number;
  /** No answer for this long, after a first one, is a lost coordinator (3 heartbeat timeouts). */
  lostAfterMs: number;
}

export type Beat = { rank: number; generation: number; step: number };
type ToThread = { kind: 'beat'; beat: Beat } | { kind: 'pause' } | { kind: 'stop' } | { kind: 'lost-after'; ms: number };
type FromThread = { kind: 'ready' } | { kind: 'failing'; message: string } | { kind: 'lost'; silentMs: number; message: string };

/** Between groups: generation 0 is never current, so the coordinator answers and records nothing. */
const PROBE: Beat = { rank: 0, generation: 0, step: 0 };

/**
 * The main thread's handle: post the state to beat with, pause between groups, stop at the end.
 * Until the thread says it is ready (loading gRPC there takes a few seconds), and for good should
 * it fail, a timer on the main thread beats instead, as before the thread existed.
 */
export class HeartbeatThread {
  private readonly worker: Worker;
  private readonly timer: NodeJS.Timeout;
  private threadReady = false;
  private last: Beat | null = null;
  private settle!: () => void;
  /** Settles once the thread beats, or has failed and left the beats to the main thread. */
  private readonly settled = new Promise<void>((resolve) => (this.settle = resolve));

  constructor(cfg: HeartbeatConfig, client: Pick<CoordinatorClient, 'heartbeat'>, onFallback: (err: Error) => void, onFailing: (message: string) => void = () => undefined,
    onLost: (silentMs: number, message: string) => void = () => undefined) {
    this.timer = setInterval(() => {
      if (this.last && !this.threadReady) client.heartbeat(this.last).catch(() => undefined);
    }, cfg.intervalMs);
    this.worker = new Worker(heartbeatThreadEntry(), { workerData: cfg });
    this.worker.unref();
    this.worker.on('message', (m: FromThread) => {
      if (m.kind === 'ready') {
        this.threadReady = true;
        this.settle();
      } else if (m.kind === 'lost') onLost(m.silentMs, m.message);
      else onFailing(m.message);
    });
    this.worker.on('error', (err) => {
      this.threadReady = false;
      this.settle();
      onFallback(err);
    });
  }

  /** True once beats come from the thread. */
  get onThread(): boolean {
    return this.threadReady;
  }

  /**
   * Waits (at most `timeoutMs`) until the thread beats or has failed. A worker calls it before its
   * first step: a step that holds the main thread while the thread is still loading (a few seconds
   * on a loaded machine) would otherwise fall silent and be taken for a lost rank.
   */
  async ready(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.settled, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    return this.threadReady;
  }

  beat(b: Beat): void {
    this.last = b;
    this.post({ kind: 'beat', beat: b });
  }

  pause(): void {
    this.last = null;
    this.post({ kind: 'pause' });
  }

  /** How long without an answer means the coordinator is lost (known once the job spec is). */
  lostAfter(ms: number): void {
    this.post({ kind: 'lost-after', ms });
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    // A ready() still waiting (setup failed while the thread loaded) ends now: its timer would hold the process up to its timeout.
    this.settle();
    this.post({ kind: 'stop' });
    await this.worker.terminate();
  }

  private post(m: ToThread): void {
    try {
      this.worker.postMessage(m);
    } catch {
      // the thread is gone: the main-thread timer carries the beats
    }
  }
}

function runThread(cfg: HeartbeatConfig): void {
  const client = new CoordinatorClient(cfg.coordinator, cfg.token, { credentials: clientCredentials(cfg.tls).credentials, deadlineMs: Math.max(5_000, 5 * cfg.intervalMs) });
  let current: Beat | null = null;
  // Three failed beats in a row are told to the main thread once (then again after a success):
  // a channel the main thread's does not share could otherwise fail in silence until the timeout.
  let failures = 0;
  let lostAfterMs = cfg.lostAfterMs;
  let lastAnswer: number | null = null;
  let lostTold = false;
  const timer = setInterval(() => {
    client.heartbeat(current ?? PROBE).then(
      () => {
        failures = 0;
        lastAnswer = performance.now();
      },
      (err: Error) => {
        if (++failures === 3) parentPort?.postMessage({ kind: 'failing', message: err.message } satisfies FromThread);
        const silentMs = lastAnswer === null ? 0 : performance.now() - lastAnswer;
        if (silentMs > lostAfterMs && !lostTold) {
          lostTold = true;
          parentPort?.postMessage({ kind: 'lost', silentMs, message: err.message } satisfies FromThread);
        }
      },
    );
  }, cfg.intervalMs);
  parentPort?.on('message', (m: ToThread) => {
    if (m.kind === 'beat') current = m.beat;
    else if (m.kind === 'pause') current = null;
    else if (m.kind === 'lost-after') lostAfterMs = m.ms;
    else {
      clearInterval(timer);
      client.close();
      parentPort?.close();
    }
  });
  parentPort?.postMessage({ kind: 'ready' } satisfies FromThread);
}

if (!isMainThread && (workerData as { intervalMs?: number } | null)?.intervalMs) runThread(workerData as HeartbeatConfig);

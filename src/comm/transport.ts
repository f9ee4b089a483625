// The point-to-point interface the all-reduce is written against (docs/internals.md#all-reduce-over-a-transport): a ZeroMQ
// implementation for real runs and an in-memory one for tests share the tag buffer below.
import { RunError } from '../errors.js';

/**
 * Every message is tagged. `sender` is the sending rank; `chunk` is the message's slot within the
 * step (the ring uses c for reduce-scatter and n + c for all-gather of chunk c, see allreduce.ts).
 */
export interface Tag {
  readonly step: number;
  readonly sender: number;
  readonly chunk: number;
}

/** Payload counters: float32 data only, not the token or header frames. */
export interface TransportStats {
  bytesSent: number;
  bytesReceived: number;
  messagesSent: number;
  messagesReceived: number;
  /** Messages dropped: a wrong token, a malformed frame, a stale step. */
  rejected: number;
}

export interface Transport {
  readonly rank: number;
  readonly size: number;
  readonly stats: Readonly<TransportStats>;
  /** Takes a copy of `data` before returning, so the caller may overwrite it at once. */
  send(to: number, tag: Tag, data: Float32Array): Promise<void>;
  /** Resolves with the message from `from` with this tag; rejects with a PeerTimeoutError after timeoutMs. */
  recv(from: number, tag: Tag, timeoutMs: number): Promise<Float32Array>;
  /**
   * Graceful by default: returns once every peer has received what this rank sent (or a drain
   * timeout passed). `abort: true` closes at once, dropping anything still queued.
   */
  close(opts?: { abort?: boolean }): Promise<void>;
}

export function newStats(): TransportStats {
  return { bytesSent: 0, bytesReceived: 0, messagesSent: 0, messagesReceived: 0, rejected: 0 };
}

function formatSeconds(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(s < 1 ? 3 : 1).replace(/0+$/, '')} s`;
}

/** A receive that ran out of time; `rank` is the peer that did not send, the first suspect of a hang. */
export class PeerTimeoutError extends RunError {
  constructor(
    readonly rank: number,
    readonly step: number,
    readonly chunk: number,
    readonly timeoutMs: number,
  ) {
    super(`step ${step}: no chunk ${chunk} from rank ${rank} after ${formatSeconds(timeoutMs)}`);
    this.name = 'PeerTimeoutError';
  }
}

/**
 * A peer whose advertised endpoint accepted no connection within the connect timeout: the first
 * suspect is its address (a loopback address on a multi-host job, a firewall), not the peer.
 */
export class PeerUnreachableError extends PeerTimeoutError {
  constructor(rank: number, step: number, chunk: number, timeoutMs: number, readonly endpoint: string, readonly by: number, why = `no connection within ${formatSeconds(timeoutMs)}`) {
    super(rank, step, chunk, timeoutMs);
    this.name = 'PeerUnreachableError';
    this.message = `step ${step}: rank ${rank} advertised ${endpoint}, which rank ${by} cannot reach (${why}; check the worker's --advertise and firewalls)`;
  }
}

interface Waiter {
  resolve(data: Float32Array): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
  tag: Tag;
}

const keyOf = (from: number, t: Tag): string => `${from}/${t.step}/${t.sender}/${t.chunk}`;
const stepOfKey = (key: string): number => Number(key.split('/')[1]);

/**
 * Matches arriving messages with receives by (from, step, sender, chunk). A message that arrives
 * before its receive is buffered; once a receive for step s has been asked for, anything older
 * than s is a leftover of an aborted step and is dropped, so the buffer cannot grow without bound.
 */
export class Mailbox {
  private readonly queued = new Map<string, Float32Array[]>();
  private readonly waiters = new Map<string, Waiter>();
  private lowestLiveStep = -Infinity;
  private closedWith: Error | null = null;
  /** Peers known to be unreachable: every receive from one fails at once with the error made here. */
  private readonly failed = new Map<number, (tag: Tag) => Error>();

  constructor(private readonly stats: TransportStats) {}

  deliver(from: number, tag: Tag, data: Float32Array): void {
    if (this.closedWith) return;
    if (tag.step < this.lowestLiveStep) {
      this.stats.rejected++;
      return;
    }
    this.stats.bytesReceived += data.byteLength;
    this.stats.messagesReceived++;
    const key = keyOf(from, tag);
    const waiter = this.waiters.get(key);
    if (waiter) {
      this.waiters.delete(key);
      clearTimeout(waiter.timer);
      waiter.resolve(data);
      return;
    }
    const list = this.queued.get(key);
    if (list) list.push(data);
    else this.queued.set(key, [data]);
  }

  take(from: number, tag: Tag, timeoutMs: number): Promise<Float32Array> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const failed = this.failed.get(from);
    if (failed) return Promise.reject(failed(tag));
    if (tag.step > this.lowestLiveStep) this.dropBefore(tag.step);
    const key = keyOf(from, tag);
    const list = this.queued.get(key);
    if (list && list.length > 0) {
      const data = list.shift() as Float32Array;
      if (list.length === 0) this.queued.delete(key);
      return Promise.resolve(data);
    }
    if (this.waiters.has(key)) {
      return Promise.reject(new RunError(`two receives for the same message from rank ${from} (step ${tag.step}, chunk ${tag.chunk})`));
    }
    return new Promise<Float32Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(key);
        reject(new PeerTimeoutError(from, tag.step, tag.chunk, timeoutMs));
      }, timeoutMs);
      this.waiters.set(key, { resolve, reject, timer, tag });
    });
  }

  /** Fails the pending and every later receive from `from` (its link is known to be down). */
  failFrom(from: number, error: (tag: Tag) => Error): void {
    this.failed.set(from, error);
    for (const [key, w] of this.waiters) {
      if (!key.startsWith(`${from}/`)) continue;
      this.waiters.delete(key);
      clearTimeout(w.timer);
      w.reject(error(w.tag));
    }
  }

  /** Rejects every pending receive; later deliveries are ignored. */
  close(reason: Error): void {
    if (this.closedWith) return;
    this.closedWith = reason;
    for (const w of this.waiters.values()) {
      clearTimeout(w.timer);
      w.reject(reason);
    }
    this.waiters.clear();
    this.queued.clear();
  }

  private dropBefore(step: number): void {
    this.lowestLiveStep = step;
    for (const key of this.queued.keys()) {
      if (stepOfKey(key) < step) {
        this.stats.rejected += this.queued.get(key)?.length ?? 0;
        this.queued.delete(key);
      }
    }
  }
}

export function checkPeer(t: { rank: number; size: number }, peer: number): void {
  if (!Number.isInteger(peer) || peer < 0 || peer >= t.size || peer === t.rank) {
    throw new RunError(`rank ${t.rank}: no peer ${peer} in a group of ${t.size}`);
  }
}

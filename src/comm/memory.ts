// An in-process group for tests (docs/internals.md#tests: fakes for the distributed parts). Delivery is
// asynchronous (a macrotask later) so that ordering bugs show up as they would on a network.
import { RunError } from '../errors.js';
import { Mailbox, checkPeer, newStats, type Tag, type Transport, type TransportStats } from './transport.js';

class InMemoryTransport implements Transport {
  readonly stats: TransportStats = newStats();
  readonly mailbox = new Mailbox(this.stats);
  private closed = false;

  constructor(
    readonly rank: number,
    readonly size: number,
    private readonly group: readonly InMemoryTransport[],
  ) {}

  send(to: number, tag: Tag, data: Float32Array): Promise<void> {
    if (this.closed) return Promise.reject(new RunError(`rank ${this.rank}: send on a closed transport`));
    checkPeer(this, to);
    const copy = data.slice();
    this.stats.bytesSent += copy.byteLength;
    this.stats.messagesSent++;
    const peer = this.group[to];
    // A closed peer is a dead process: the message is lost, as on a network.
    setImmediate(() => {
      if (!peer.closed) peer.mailbox.deliver(this.rank, tag, copy);
    });
    return Promise.resolve();
  }

  recv(from: number, tag: Tag, timeoutMs: number): Promise<Float32Array> {
    checkPeer(this, from);
    return this.mailbox.take(from, tag, timeoutMs);
  }

  close(): Promise<void> {
    this.closed = true;
    this.mailbox.close(new RunError(`rank ${this.rank}: transport closed`));
    return Promise.resolve();
  }
}

/** n connected transports, ranks 0..n-1. */
export function createInMemoryGroup(n: number): InMemoryTransport[] {
  if (!Number.isInteger(n) || n < 1) throw new RunError(`group size must be a positive integer, got ${n}`);
  const group: InMemoryTransport[] = [];
  for (let r = 0; r < n; r++) group.push(new InMemoryTransport(r, n, group));
  return group;
}

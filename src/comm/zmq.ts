// The ZeroMQ Transport (zeromq v6). Each rank binds one ROUTER and connects one DEALER per peer,
// routingId = its rank; ROUTER/DEALER because PUB/SUB drops messages by design. zeromq.js allows
// one send and one receive in flight per socket: sends to a peer are chained on a promise queue,
// and a single loop receives on the ROUTER.
//
// Wire format, one multipart message per tagged chunk:
//   [job token (utf8), header: uint32 LE step, sender, chunk (12 bytes), float32 LE payload]
// (the ROUTER prepends the DEALER's routingId, the sender's claimed rank).
//
// Before a connection's routing id is bound it must authenticate (zmq-auth.ts, through the ZAP
// handler of zap.ts): PLAIN with the job token, or CURVE with one of the group's keys. libzmq drops a
// connection whose frame exceeds `maxMessageBytes` as soon as it reads the frame's size, before
// buffering it: a peer cannot make a rank allocate gigabytes.
import { timingSafeEqual } from 'node:crypto';
import * as zmq from 'zeromq';
import { RunError, UserError } from '../errors.js';
import { childLog } from '../log.js';
import { RefusalLog } from './refusals.js';
import { Mailbox, PeerUnreachableError, checkPeer, newStats, type Tag, type Transport, type TransportStats } from './transport.js';
import { registerZap, unregisterZap } from './zap.js';
import { PeerAuth } from './zmq-auth.js';

const log = childLog('zmq');

/** CURVE keys (Z85 text, from zmq.curveKeyPair()); with them every connection is encrypted. */
export interface CurveKeys {
  publicKey: string;
  secretKey: string;
  /** Public key of every rank's ROUTER, index = rank (this rank's own entry is not used). */
  peerPublicKeys: readonly string[];
}

export interface ZmqTransportOptions {
  rank: number;
  size: number;
  token: string;
  /** ZeroMQ endpoint to bind; `tcp://127.0.0.1:*` (the default) picks a free port. */
  bind?: string;
  /** Host put into `endpoint` when binding a wildcard address such as 0.0.0.0 (worker --advertise). */
  advertise?: string;
  curve?: CurveKeys;
  /** A send not handed to ZeroMQ within this time fails instead of hanging (default 60 s). */
  sendTimeoutMs?: number;
  /**
   * Every peer's endpoint must accept a TCP connection within this (default 15 s,
   * distributed.connect_timeout_s); otherwise sends to and receives from it fail with a
   * PeerUnreachableError naming the endpoint, long before any all-reduce timeout.
   */
  connectTimeoutMs?: number;
  /**
   * The largest frame a peer may send, bytes (see maxMessageBytes()); a larger one drops the
   * connection unread. Default FIRST_BIND_MAX_MESSAGE_BYTES, for a worker that does not know its
   * job's buffer size yet.
   */
  maxMessageBytes?: number;
}

/**
 * A worker binds its first ROUTER before Register tells it the job, so it cannot know the size of
 * the buffers it will receive; that first ROUTER accepts frames up to 256 MiB (the restore broadcast
 * of up to ~22 M trainable numbers). Every later one is bound with the exact limit.
 */
const FIRST_BIND_MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

/** The frame limit for a group whose largest all-reduce buffer has `floats` numbers (payload + slack for token and header). */
export function maxMessageBytes(floats: number): number {
  return 4 * floats + 1024;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;

export interface CloseOptions {
  /**
   * Close at once, dropping whatever is still queued (a group being abandoned after a failure).
   * Without it close() first sends every peer a goodbye behind its data and waits (up to
   * `drainMs`, default 10 s) for every peer's goodbye: see close().
   */
  abort?: boolean;
  drainMs?: number;
}

const HEADER_BYTES = 12;
/** step = chunk = 0xffffffff with no payload: "I have received everything I need from you". */
const BYE = 0xffffffff;

export class ZmqTransport implements Transport {
  readonly stats: TransportStats = newStats();
  private readonly mailbox = new Mailbox(this.stats);
  private readonly tokenBytes: Buffer;
  private readonly dealers = new Map<number, zmq.Dealer>();
  private readonly queues = new Map<number, Promise<void>>();
  private closed = false;
  private readonly byes = new Set<number>();
  private byeWaiter: (() => void) | null = null;
  private loopDone: Promise<void> = Promise.resolve();
  /** Peers whose endpoint never answered: the error each send or receive involving one fails with. */
  private readonly unreachable = new Map<number, (tag: Tag) => RunError>();
  private readonly onUnreachable = new Map<number, Set<(error: (tag: Tag) => RunError) => void>>();
  private readonly connectTimers: NodeJS.Timeout[] = [];

  private constructor(
    public rank: number,
    public size: number,
    private readonly router: zmq.Router,
    /** The endpoint peers connect to. */
    readonly endpoint: string,
    private curve: CurveKeys | undefined,
    token: string,
    private readonly sendTimeoutMs: number,
    private connectTimeoutMs: number,
    private readonly auth: PeerAuth,
    private readonly zapDomain: string,
    private readonly refusals: RefusalLog,
  ) {
    this.tokenBytes = Buffer.from(token, 'utf8');
  }

  /** Binds this rank's ROUTER and starts receiving; call `connect` once the peers' endpoints are known. */
  static async bind(opts: ZmqTransportOptions): Promise<ZmqTransport> {
    if (!opts.token) throw new UserError('a job token is required (ONELORA_JOB_TOKEN)');
    // size 0: not in a group yet (a worker binds before Register assigns its rank; see join()).
    if (opts.size !== 0 && (!Number.isInteger(opts.rank) || opts.rank < 0 || opts.rank >= opts.size)) {
      throw new UserError(`rank ${opts.rank} is outside a group of ${opts.size}`);
    }
    // No handover: a second connection claiming a connected rank's routing id is refused rather than
    // taking the rank over. A re-formed group (new generation) binds fresh transports.
    const refusals = new RefusalLog(log);
    const auth = new PeerAuth(opts.token, opts.rank, opts.size, refusals, !!opts.curve);
    if (opts.size > 0 && opts.curve) auth.join(opts.rank, opts.size, opts.curve.peerPublicKeys);
    const zapDomain = await registerZap(auth.authenticate);
    // A connection waiting for the group's keys (CURVE) may take as long as the group takes to form.
    const router = new zmq.Router({ linger: 0, receiveHighWaterMark: 0, zapDomain, handshakeInterval: 300_000, maxMessageSize: opts.maxMessageBytes ?? FIRST_BIND_MAX_MESSAGE_BYTES });
    if (opts.curve) {
      router.curveServer = true;
      router.curveSecretKey = opts.curve.secretKey;
    } else router.plainServer = true;
    const address = opts.bind ?? 'tcp://127.0.0.1:*';
    try {
      await router.bind(address);
    } catch (err) {
      router.close();
      await unregisterZap(zapDomain);
      throw new RunError(`rank ${opts.rank}: cannot bind ZeroMQ endpoint ${address}: ${(err as Error).message}`, { cause: err });
    }
    let endpoint = router.lastEndpoint ?? address;
    if (opts.advertise) endpoint = endpoint.replace(/^tcp:\/\/[^:]+:/, `tcp://${opts.advertise}:`);
    const t = new ZmqTransport(opts.rank, opts.size, router, endpoint, opts.curve, opts.token, opts.sendTimeoutMs ?? 60_000, opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, auth, zapDomain, refusals);
    t.loopDone = t.receiveLoop();
    return t;
  }

  /**
   * Takes rank `rank` of a group formed after this transport was bound with size 0 (a worker needs
   * its endpoint to register and learns its rank from the reply), then connects. Messages that
   * arrived before are already in the mailbox. With CURVE the peers' public keys arrive the same
   * way (index = rank).
   */
  join(rank: number, endpoints: readonly string[], peerPublicKeys?: readonly string[], connectTimeoutMs?: number): void {
    if (this.size !== 0) throw new RunError(`rank ${this.rank}: already in a group of ${this.size}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= endpoints.length) throw new RunError(`rank ${rank} is outside a group of ${endpoints.length}`);
    if (this.curve && peerPublicKeys) this.curve = { ...this.curve, peerPublicKeys };
    if (connectTimeoutMs !== undefined) this.connectTimeoutMs = connectTimeoutMs;
    this.rank = rank;
    this.size = endpoints.length;
    this.auth.join(rank, this.size, this.curve?.peerPublicKeys ?? []);
    this.connect(endpoints);
  }

  /** Connects one DEALER to every other rank's endpoint (index = rank). */
  connect(endpoints: readonly string[]): void {
    if (endpoints.length !== this.size) {
      throw new RunError(`rank ${this.rank}: ${endpoints.length} endpoints for a group of ${this.size}`);
    }
    for (let p = 0; p < this.size; p++) {
      if (p === this.rank || this.dealers.has(p)) continue;
      const dealer = new zmq.Dealer({ linger: 0, routingId: String(this.rank), sendHighWaterMark: 0 });
      if (this.curve) {
        if (!this.curve.peerPublicKeys[p]) {
          dealer.close();
          throw new RunError(`rank ${this.rank}: CURVE is on but rank ${p} has no public key`);
        }
        dealer.curvePublicKey = this.curve.publicKey;
        dealer.curveSecretKey = this.curve.secretKey;
        dealer.curveServerKey = this.curve.peerPublicKeys[p];
      } else {
        // PLAIN: the handshake proves the token before the peer binds this rank's routing id.
        dealer.plainUsername = String(this.rank);
        dealer.plainPassword = this.tokenBytes.toString('utf8');
      }
      this.watchConnect(p, dealer, endpoints[p]!);
      dealer.connect(endpoints[p]!);
      this.dealers.set(p, dealer);
      this.queues.set(p, Promise.resolve());
    }
  }

  /**
   * A DEALER retries an unreachable endpoint forever and a send to it just waits, so an endpoint no
   * one can reach (a loopback address advertised to other hosts, a closed firewall port) would only
   * show as an all-reduce timeout blaming the peer. Instead: no TCP connection within the connect
   * timeout fails every send to and receive from that peer, naming the endpoint and who cannot reach it.
   */
  private watchConnect(p: number, dealer: zmq.Dealer, endpoint: string): void {
    // A loopback address advertised to another host can land on this rank's own port there: the
    // DEALER "connects", to itself, and the peer would only be blamed by the all-reduce timeout.
    const own = /^tcp:\/\/([^:]+):(\d+)$/.exec(endpoint);
    const self = own && own[2] === /:(\d+)$/.exec(this.endpoint)?.[1] && (own[1]!.startsWith('127.') || own[1] === 'localhost' || endpoint === this.endpoint);
    if (self) return this.declareUnreachable(p, endpoint, `it is rank ${this.rank}'s own port`);
    let connected = false;
    dealer.events.on('connect', () => (connected = true));
    const timer = setTimeout(() => {
      if (!connected && !this.closed) this.declareUnreachable(p, endpoint, `no connection within ${this.connectTimeoutMs / 1000} s`);
    }, this.connectTimeoutMs);
    timer.unref();
    this.connectTimers.push(timer);
  }

  private declareUnreachable(p: number, endpoint: string, why: string): void {
    const error = (tag: Tag): RunError => new PeerUnreachableError(p, tag.step, tag.chunk, this.connectTimeoutMs, endpoint, this.rank, why);
    log.error({ rank: this.rank, peer: p, endpoint }, `rank ${p} advertised ${endpoint}, which rank ${this.rank} cannot reach (${why})`);
    this.unreachable.set(p, error);
    for (const l of this.onUnreachable.get(p) ?? []) l(error);
    this.mailbox.failFrom(p, error);
  }

  send(to: number, tag: Tag, data: Float32Array): Promise<void> {
    if (this.closed) return Promise.reject(new RunError(`rank ${this.rank}: send on a closed transport`));
    checkPeer(this, to);
    const dealer = this.dealers.get(to);
    if (!dealer) return Promise.reject(new RunError(`rank ${this.rank}: not connected to rank ${to} (call connect first)`));
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt32LE(tag.step, 0);
    header.writeUInt32LE(tag.sender, 4);
    header.writeUInt32LE(tag.chunk, 8);
    // A private copy: zeromq may send large buffers zero-copy, after the caller has changed them.
    const copy = data.slice();
    const payload = Buffer.from(copy.buffer, copy.byteOffset, copy.byteLength);
    const prev = this.queues.get(to) ?? Promise.resolve();
    const sent = prev.then(() => this.watch(dealer.send([this.tokenBytes, header, payload]), to, tag));
    this.queues.set(to, sent.catch(() => undefined));
    return sent.then(() => {
      this.stats.bytesSent += copy.byteLength;
      this.stats.messagesSent++;
    });
  }

  /** zeromq.js resolves a send once libzmq has queued it; one that never resolves must not hang the step. */
  private watch(p: Promise<void>, to: number, tag: Tag): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const down = this.unreachable.get(to);
      if (down) return reject(down(tag));
      const onDown = (error: (tag: Tag) => RunError): void => reject(error(tag));
      const listeners = this.onUnreachable.get(to) ?? new Set();
      this.onUnreachable.set(to, listeners.add(onDown));
      const timer = setTimeout(() => {
        reject(new RunError(`step ${tag.step}: send of chunk ${tag.chunk} to rank ${to} not queued after ${this.sendTimeoutMs / 1000} s`));
      }, this.sendTimeoutMs);
      p.then(resolve, reject).finally(() => {
        clearTimeout(timer);
        listeners.delete(onDown);
      });
    });
  }

  recv(from: number, tag: Tag, timeoutMs: number): Promise<Float32Array> {
    checkPeer(this, from);
    return this.mailbox.take(from, tag, timeoutMs);
  }

  /**
   * zeromq.js resolves a send once libzmq has *queued* it; closing with linger 0 then discards
   * whatever is still queued. That was the lost ring message of the benchmark (a rank finished its
   * last all-reduce, closed, and its last all-gather chunk, still in the DEALER's queue, never left:
   * the successor waited for it and timed out naming this rank). A graceful close therefore sends a
   * goodbye frame behind the data on every link (each DEALER→ROUTER link is one ordered TCP
   * stream) and waits for every peer's goodbye, which a peer sends only once it is itself closing,
   * i.e. has received all it needs. Only then are the sockets closed (a short linger covers the
   * goodbyes themselves). `abort` skips all that: the group is being abandoned.
   */
  async close(opts: CloseOptions = {}): Promise<void> {
    if (this.closed) return;
    if (!opts.abort && this.dealers.size > 0) await this.drain(opts.drainMs ?? 10_000);
    this.closed = true;
    for (const t of this.connectTimers) clearTimeout(t);
    this.mailbox.close(new RunError(`rank ${this.rank}: transport closed`));
    for (const d of this.dealers.values()) {
      if (!opts.abort) d.linger = 1000;
      d.close();
    }
    this.router.close();
    this.auth.close();
    await this.loopDone;
    await unregisterZap(this.zapDomain);
    this.refusals.close();
  }

  private async drain(drainMs: number): Promise<void> {
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt32LE(BYE, 0);
    header.writeUInt32LE(this.rank, 4);
    header.writeUInt32LE(BYE, 8);
    const sends = [...this.dealers].map(([p, d]) => {
      const queued = (this.queues.get(p) ?? Promise.resolve()).then(() => this.watch(d.send([this.tokenBytes, header, Buffer.alloc(0)]), p, { step: BYE, sender: this.rank, chunk: BYE }));
      return queued.catch(() => undefined);
    });
    const all = new Promise<void>((resolve) => {
      this.byeWaiter = () => {
        if (this.byes.size >= this.dealers.size) resolve();
      };
      this.byeWaiter();
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, drainMs)));
    await Promise.race([Promise.all([all, ...sends]), timeout]);
    clearTimeout(timer);
    if (this.byes.size < this.dealers.size) {
      const missing = [...this.dealers.keys()].filter((p) => !this.byes.has(p));
      log.warn({ rank: this.rank, missing }, `closing without a goodbye from rank(s) ${missing.join(', ')} after ${drainMs / 1000} s`);
    }
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const frames of this.router) this.onMessage(frames);
    } catch (err) {
      if (!this.closed) {
        log.error({ rank: this.rank, err: (err as Error).message }, 'ZeroMQ receive loop failed');
        this.mailbox.close(new RunError(`rank ${this.rank}: ZeroMQ receive failed: ${(err as Error).message}`, { cause: err }));
      }
    }
  }

  private onMessage(frames: Buffer[]): void {
    const claimed = frames[0]?.toString('utf8') ?? '?';
    const [, token, header, payload] = frames;
    if (frames.length !== 4 || !token || !this.tokenMatches(token)) {
      this.reject(claimed, frames.length !== 4 ? 'malformed message' : 'wrong job token');
      return;
    }
    if (header.length !== HEADER_BYTES || payload.length % 4 !== 0) {
      this.reject(claimed, 'malformed header or payload');
      return;
    }
    const tag: Tag = { step: header.readUInt32LE(0), sender: header.readUInt32LE(4), chunk: header.readUInt32LE(8) };
    const from = Number(claimed);
    if (!Number.isInteger(from) || from < 0 || (this.size > 0 && from >= this.size) || tag.sender !== from) {
      this.reject(claimed, 'its sender field does not match its routing id');
      return;
    }
    if (tag.step === BYE && tag.chunk === BYE) {
      this.byes.add(from);
      this.byeWaiter?.();
      return;
    }
    // Float32Array needs 4-byte alignment; zeromq buffers usually are, copy when not.
    const data =
      payload.byteOffset % 4 === 0
        ? new Float32Array(payload.buffer, payload.byteOffset, payload.length / 4)
        : new Float32Array(new Uint8Array(payload).buffer);
    this.mailbox.deliver(from, tag, data);
  }

  private tokenMatches(token: Buffer): boolean {
    return token.length === this.tokenBytes.length && timingSafeEqual(token, this.tokenBytes);
  }

  /** Drops a message; counted and summarised (refusals.ts), so a stray peer cannot flood the log. */
  private reject(claimed: string, reason: string): void {
    this.stats.rejected++;
    this.refusals.refuse(`rank ${this.rank}: dropped a ZeroMQ message: ${reason}`, `claimed rank ${claimed}`);
  }
}

/** A fresh CURVE key pair (Z85 text). */
export function curveKeyPair(): { publicKey: string; secretKey: string } {
  return zmq.curveKeyPair();
}

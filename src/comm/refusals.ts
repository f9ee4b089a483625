// Logging what a peer did wrong without letting the peer write the log. A hostile or broken peer can
// make thousands of refused calls or messages a second: one line per refusal filled 13 MB of log in
// 20 s. So the first refusal of each reason in a window is logged at once (with the peer), the rest
// are counted and summarised once per window, and every set that tracks peers is bounded. Reasons
// are chosen by our code; peer-supplied text only goes into the peer field (and src/log.ts escapes
// control characters of everything it prints, so a routing id with "\n" cannot forge a line).
// Hand-written: pino has no rate limiting, and a package for twenty lines would be more to trust.
import type { Logger } from '../log.js';

interface Tally {
  count: number;
  peers: Set<string>;
  otherPeers: number;
}

export interface RefusalLogOptions {
  /** Summary period (default 10 s). */
  windowMs?: number;
  /** Distinct reasons tracked per window; more fold into one "other" entry (default 32). */
  maxReasons?: number;
  /** Distinct peers named per reason; more are only counted (default 8). */
  maxPeers?: number;
}

const OTHER = 'other refusals';
/** The longest peer text kept (an address, a claimed rank); longer is cut, so a peer cannot grow our memory. */
const MAX_PEER_CHARS = 80;

export class RefusalLog {
  private window = new Map<string, Tally>();
  private timer: NodeJS.Timeout | null = null;
  private readonly windowMs: number;
  private readonly maxReasons: number;
  private readonly maxPeers: number;
  /** Refusals seen since the start, for tests and metrics. */
  total = 0;

  constructor(
    private readonly log: Logger,
    opts: RefusalLogOptions = {},
  ) {
    this.windowMs = opts.windowMs ?? 10_000;
    this.maxReasons = opts.maxReasons ?? 32;
    this.maxPeers = opts.maxPeers ?? 8;
  }

  /** Counts one refusal; logs it at once when it is the first of its reason in this window. */
  refuse(reason: string, peer: string, fields: Record<string, unknown> = {}): void {
    this.total++;
    const p = peer.length > MAX_PEER_CHARS ? `${peer.slice(0, MAX_PEER_CHARS)}…` : peer;
    let key = reason;
    let t = this.window.get(key);
    if (!t && this.window.size >= this.maxReasons) t = this.window.get((key = OTHER));
    if (!t) {
      this.window.set(key, { count: 0, peers: new Set([p]), otherPeers: 0 });
      this.log.warn({ peer: p, ...fields }, reason);
      this.arm();
      return;
    }
    t.count++;
    if (t.peers.has(p)) return;
    if (t.peers.size < this.maxPeers) t.peers.add(p);
    else t.otherPeers++;
  }

  /** Logs the summaries of the window now (also done by the timer, and on close). */
  flush(): void {
    const w = this.window;
    this.window = new Map();
    for (const [reason, t] of w) {
      if (t.count === 0) continue;
      const from = [...t.peers].join(', ') + (t.otherPeers > 0 ? ` and ${t.otherPeers} other peer(s)` : '');
      this.log.warn({ refused: t.count, peers: [...t.peers] }, `${reason}: ${t.count} more refused in the last ${Math.round(this.windowMs / 1000)} s (from ${from})`);
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.flush();
  }

  private arm(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      const quiet = this.window.size === 0;
      this.flush();
      if (quiet && this.timer) {
        clearInterval(this.timer);
        this.timer = null;
      }
    }, this.windowMs);
    this.timer.unref();
  }
}

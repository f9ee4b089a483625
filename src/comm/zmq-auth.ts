// Who may connect to a rank's ROUTER (docs/distributed.md#security-model), answered through the
// process's ZAP handler (zap.ts) before libzmq binds the connection's routing id — so a peer can no
// longer squat a rank's id before the rank connects. Without CURVE every DEALER logs in with PLAIN,
// username = its rank, password = the job token: the first thing a connection sends proves the
// token. With CURVE the client's public key must be one of the group's, as the coordinator handed
// them out; until the group is known the answer waits (a refused client would never reconnect).
import { timingSafeEqual } from 'node:crypto';
import type { RefusalLog } from './refusals.js';
import type { ZapRequest } from './zap.js';

/** Connections that may wait for the group's keys at once; more are refused. */
const MAX_WAITING = 256;
/** Ranks whose first address is remembered before the group's size is known. */
const MAX_SEEN = 1024;

export class PeerAuth {
  private readonly token: Buffer;
  /** Rank → the address its first accepted connection came from (bounded: ranks < size). */
  private readonly seen = new Map<number, string>();
  private keys: Map<string, number> | null = null;
  private waiting: ((ok: boolean) => void)[] = [];

  constructor(
    token: string,
    private rank: number,
    private size: number,
    private readonly refusals: RefusalLog,
    private readonly curve: boolean,
  ) {
    this.token = Buffer.from(token, 'utf8');
  }

  /** The group is known: rank, size and (with CURVE) every rank's public key; waiting connections are answered. */
  join(rank: number, size: number, publicKeys: readonly string[]): void {
    this.rank = rank;
    this.size = size;
    if (!this.curve) return;
    this.keys = new Map(publicKeys.map((k, r) => [k, r] as const).filter(([, r]) => r !== rank));
    const w = this.waiting;
    this.waiting = [];
    for (const resolve of w) resolve(true);
  }

  /** Refuses everything still waiting (the transport closes). */
  close(): void {
    const w = this.waiting;
    this.waiting = [];
    for (const resolve of w) resolve(false);
  }

  authenticate = async (req: ZapRequest): Promise<boolean> => {
    if (this.curve) {
      if (req.mechanism !== 'CURVE' || req.credentials[0]?.length !== 32) return this.refuse('not a CURVE client', req.address);
      if (!this.keys) {
        if (this.waiting.length >= MAX_WAITING) return this.refuse('too many connections before the group formed', req.address);
        if (!(await new Promise<boolean>((resolve) => this.waiting.push(resolve)))) return false;
      }
      const rank = this.keys?.get(z85(req.credentials[0])) ?? -1;
      if (rank < 0) return this.refuse('a CURVE key that is not one of the group\'s', req.address);
      return this.accept(rank, req.address);
    }
    const [user, password] = req.credentials;
    if (req.mechanism !== 'PLAIN' || !user || !password) return this.refuse('not a PLAIN client (no job token)', req.address);
    if (password.length !== this.token.length || !timingSafeEqual(password, this.token)) return this.refuse('wrong job token', req.address, user.toString('utf8'));
    const rank = /^\d{1,6}$/.test(user.toString('latin1')) ? Number(user.toString('latin1')) : -1;
    if (rank < 0 || rank === this.rank && this.size > 0 || (this.size > 0 && rank >= this.size)) return this.refuse('a rank outside the group', req.address, user.toString('utf8'));
    return this.accept(rank, req.address);
  };

  private accept(rank: number, address: string): boolean {
    const first = this.seen.get(rank);
    // libzmq keeps the first connection of a routing id while it is open and silently drops a second
    // one: say so once, with both addresses (a reconnect after a broken link is the harmless case).
    if (first !== undefined) this.refusals.refuse(`rank ${this.rank}: rank ${rank} connected again (first from ${first}): a reconnect, or a second peer claiming the rank, which ZeroMQ drops while the first connection is open`, address);
    else if (this.seen.size < MAX_SEEN) this.seen.set(rank, address);
    return true;
  }

  private refuse(reason: string, address: string, claimed?: string): false {
    this.refusals.refuse(`rank ${this.rank}: refused a ZeroMQ connection: ${reason}`, address, claimed === undefined ? {} : { claimed_rank: claimed });
    return false;
  }
}

const Z85 = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';

/** Z85 text of a binary key (ZeroMQ RFC 32), to compare with the keys zeromq.js hands out as text. */
function z85(bytes: Buffer): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 4) {
    let v = bytes.readUInt32BE(i);
    const block: string[] = [];
    for (let j = 0; j < 5; j++) {
      block.unshift(Z85[v % 85]!);
      v = Math.floor(v / 85);
    }
    out += block.join('');
  }
  return out;
}

// The ZeroMQ authentication handler (ZAP, RFC 27) of this process: libzmq asks it about every
// connection a ROUTER accepts with PLAIN or CURVE security, before the connection's routing id is
// bound, and drops the connection unless it answers 200. One handler serves every transport of the
// process (libzmq looks for it at inproc://zeromq.zap.01 in the socket's context); transports
// register by their ZAP domain. zeromq.js has no handler of its own, so this one is hand-written: a
// ROUTER socket (not REP) so that an answer may wait — a CURVE transport only knows its group's keys
// once the group has formed, and a refused client never reconnects.
import * as zmq from 'zeromq';

export interface ZapRequest {
  /** The peer's IP address (libzmq gives no port). */
  address: string;
  mechanism: string;
  /** PLAIN: [username, password]; CURVE: [32-byte client public key]. */
  credentials: Buffer[];
}

/** Resolves true to accept the connection; may wait (bounded by the ROUTER's handshake interval). */
export type Authenticate = (req: ZapRequest) => boolean | Promise<boolean>;

const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';

let socket: zmq.Router | null = null;
let ready: Promise<void> | null = null;
let loop: Promise<void> = Promise.resolve();
/** zeromq.js takes one send at a time per socket: answers that waited go out in turn. */
let sending: Promise<unknown> = Promise.resolve();
const domains = new Map<string, Authenticate>();
let counter = 0;

/** Registers `auth` under a fresh domain (set it as the ROUTER's zapDomain); the handler runs while any is registered. */
export async function registerZap(auth: Authenticate): Promise<string> {
  const domain = `onelora-${process.pid}-${++counter}`;
  domains.set(domain, auth);
  if (closing) {
    clearTimeout(closing);
    closing = undefined;
  }
  await closed; // a handler being closed must free its inproc name before the next binds it
  if (!socket) {
    const s = new zmq.Router({ linger: 0 });
    socket = s;
    // zeromq.js refuses a receive while a bind is in flight: serve once bound.
    ready = s.bind(ZAP_ENDPOINT).then(() => void (loop = serve(s)));
  }
  await ready;
  return domain;
}

/**
 * Forgets a domain; the handler closes CLOSE_GRACE_MS after the last one goes (so that the process
 * can exit) unless a transport registers again first. Not at once: a ROUTER just closed still has
 * sessions being torn down by libzmq's reaper, each with a pipe to this handler, and closing the
 * handler under them aborts the process (libzmq asserts in pipe termination, seen under load when
 * a group re-forms: the old transport closes and the next one registers).
 */
export async function unregisterZap(domain: string): Promise<void> {
  domains.delete(domain);
  if (domains.size > 0 || !socket || closing) return;
  closing = setTimeout(() => void (closed = closeHandler()), CLOSE_GRACE_MS);
}

const CLOSE_GRACE_MS = 1000;
let closing: NodeJS.Timeout | undefined;
let closed: Promise<void> = Promise.resolve();

async function closeHandler(): Promise<void> {
  closing = undefined;
  if (domains.size > 0 || !socket) return;
  const s = socket;
  socket = null;
  ready = null;
  await s.unbind(ZAP_ENDPOINT).catch(() => undefined);
  s.close();
  await loop;
}

async function serve(s: zmq.Router): Promise<void> {
  try {
    for await (const frames of s) void answer(s, frames);
  } catch {
    // closed
  }
}

async function answer(s: zmq.Router, frames: Buffer[]): Promise<void> {
  // [client id, empty delimiter, version, request id, domain, address, identity, mechanism, credentials…]
  const [client, delimiter, version, requestId, domain, address, , mechanism, ...credentials] = frames;
  if (!client || !delimiter || !version || !requestId || !domain || !address || !mechanism) return;
  const auth = domains.get(domain.toString());
  let ok = false;
  try {
    ok = auth ? await auth({ address: address.toString(), mechanism: mechanism.toString(), credentials }) : false;
  } catch {
    ok = false;
  }
  const reply = [client, Buffer.alloc(0), version, requestId, ok ? '200' : '400', ok ? 'OK' : 'refused', '', ''];
  sending = sending.then(() => (s.closed ? undefined : s.send(reply))).catch(() => undefined);
  await sending;
}

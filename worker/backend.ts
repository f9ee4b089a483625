// The worker's communication backend as hooks (docs/internals.md#backend-hooks, after Ray Train's
// Backend.on_start / on_shutdown): the training loop never opens or closes sockets itself.
import { ZmqTransport, curveKeyPair, maxMessageBytes } from '../src/comm/zmq.js';
import { portRefused } from '../src/comm/listen.js';
import type { Transport } from '../src/comm/transport.js';
import { advertiseToward } from './advertise.js';

export interface CommBackend {
  /** This worker's CURVE public key (Z85), sent with Register; '' without CURVE. */
  readonly curvePublicKey: string;
  /**
   * Binds this worker's endpoint for a new group (before Register: the endpoint goes in the
   * request). `largestFloats`: the largest buffer a peer will send, once the job is known.
   */
  onStart(largestFloats?: number): Promise<string>;
  /** Connects to the group Register returned; from here `transport` is usable. */
  onGroup(rank: number, endpoints: readonly string[], curvePublicKeys: readonly string[], connectTimeoutMs?: number): Promise<Transport>;
  /** Closes the transport: gracefully at the end of a run, at once (`abort`) when the group is abandoned. */
  onShutdown(abort: boolean): Promise<void>;
}

export interface ZmqBackendOptions {
  token: string;
  /** Host put into the advertised endpoint (worker --advertise); absent: see advertiseToward. */
  advertise?: string;
  /** The coordinator's HOST:PORT: without --advertise, the address that reaches it is advertised. */
  coordinator: string;
  /** Port to bind (worker --zmq-port); 0: any free port. */
  port: number;
  /** The rank this worker was started as (--rank), -1 when the coordinator assigns one: named when the port is taken. */
  rank: number;
  /** Encrypt the ZeroMQ links with CURVE (worker --zmq-curve): a keypair made for this process. */
  curve?: boolean;
}

/** A fresh ZeroMQ ROUTER per group (new generation, fresh endpoints), DEALERs once the peers are known. */
export function zmqBackend(opts: ZmqBackendOptions): CommBackend {
  let bound: ZmqTransport | null = null;
  let advertise: Promise<string | null> | undefined;
  // One keypair per process: only its public half leaves it, through Register and the coordinator.
  const keys = opts.curve ? curveKeyPair() : null;
  return {
    curvePublicKey: keys?.publicKey ?? '',
    async onStart(largestFloats) {
      advertise ??= opts.advertise ? Promise.resolve(opts.advertise) : advertiseToward(opts.coordinator);
      const advertised = await advertise;
      const host = advertised ? '0.0.0.0' : '127.0.0.1';
      // The rank is only known after Register, which needs the endpoint: bind outside any group, join below.
      bound = await ZmqTransport.bind({
        rank: 0, size: 0, token: opts.token, bind: `tcp://${host}:${opts.port || '*'}`, advertise: advertised ?? undefined,
        curve: keys ? { ...keys, peerPublicKeys: [] } : undefined, maxMessageBytes: largestFloats === undefined ? undefined : maxMessageBytes(largestFloats),
      }).catch((err: unknown) => {
        // Not yet in a group: name the rank this worker was started as, not the placeholder 0.
        throw portRefused((err as Error).cause, '--zmq-port', opts.port, opts.rank >= 0 ? `rank ${opts.rank}` : 'this worker (no rank yet)') ?? err;
      });
      return bound.endpoint;
    },
    async onGroup(rank, endpoints, curvePublicKeys, connectTimeoutMs) {
      const t = bound as ZmqTransport;
      t.join(rank, endpoints, curvePublicKeys, connectTimeoutMs);
      return t;
    },
    async onShutdown(abort) {
      const t = bound;
      bound = null;
      await t?.close({ abort });
    },
  };
}

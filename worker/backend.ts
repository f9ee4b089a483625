// The worker's communication backend as hooks (docs/internals.md#backend-hooks, after Ray Train's
// Backend.on_start / on_shutdown): the training loop never opens or closes sockets itself.
import { ZmqTransport, curveKeyPair, maxMessageBytes } from '../src/comm/zmq.js';
import type { Transport } from '../src/comm/transport.js';

export interface CommBackend {
  /** This worker's CURVE public key (Z85), sent with Register; '' without CURVE. */
  readonly curvePublicKey: string;
  /**
   * Binds this worker's endpoint for a new group (before Register: the endpoint goes in the
   * request). `largestFloats`: the largest buffer a peer will send, once the job is known.
   */
  onStart(largestFloats?: number): Promise<string>;
  /** Connects to the group Register returned; from here `transport` is usable. */
  onGroup(rank: number, endpoints: readonly string[], curvePublicKeys: readonly string[]): Promise<Transport>;
  /** Closes the transport: gracefully at the end of a run, at once (`abort`) when the group is abandoned. */
  onShutdown(abort: boolean): Promise<void>;
}

export interface ZmqBackendOptions {
  token: string;
  /** Host put into the advertised endpoint (worker --advertise). */
  advertise?: string;
  /** Port to bind (worker --zmq-port); 0: any free port. */
  port: number;
  /** Encrypt the ZeroMQ links with CURVE (worker --zmq-curve): a keypair made for this process. */
  curve?: boolean;
}

/** A fresh ZeroMQ ROUTER per group (new generation, fresh endpoints), DEALERs once the peers are known. */
export function zmqBackend(opts: ZmqBackendOptions): CommBackend {
  let bound: ZmqTransport | null = null;
  // One keypair per process: only its public half leaves it, through Register and the coordinator.
  const keys = opts.curve ? curveKeyPair() : null;
  return {
    curvePublicKey: keys?.publicKey ?? '',
    async onStart(largestFloats) {
      const host = opts.advertise ? '0.0.0.0' : '127.0.0.1';
      // The rank is only known after Register, which needs the endpoint: bind outside any group, join below.
      bound = await ZmqTransport.bind({
        rank: 0, size: 0, token: opts.token, bind: `tcp://${host}:${opts.port || '*'}`, advertise: opts.advertise,
        curve: keys ? { ...keys, peerPublicKeys: [] } : undefined, maxMessageBytes: largestFloats === undefined ? undefined : maxMessageBytes(largestFloats),
      });
      return bound.endpoint;
    },
    async onGroup(rank, endpoints, curvePublicKeys) {
      const t = bound as ZmqTransport;
      t.join(rank, endpoints, curvePublicKeys);
      return t;
    },
    async onShutdown(abort) {
      const t = bound;
      bound = null;
      await t?.close({ abort });
    },
  };
}

// Which host a worker advertises in its ZeroMQ endpoint when --advertise is not given. A worker
// whose coordinator is on loopback is on a one-host job: 127.0.0.1. Otherwise a loopback address
// would reach no other host (peers would dial themselves and the job fail minutes later, blaming
// the peer), so it advertises the local address of the route to the coordinator: the interface
// other hosts of the job can reach it on. A connected UDP socket tells that address without
// sending a packet (the kernel picks the route and source address at connect).
import dgram from 'node:dgram';
import net from 'node:net';
import { UserError, messageOf } from '../src/errors.js';

/** HOST and PORT of `host:port` or `[v6]:port`. */
function splitHostPort(address: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  if (!m) throw new UserError(`--coordinator ${address}: expected HOST:PORT`);
  return { host: m[1]!, port: Number(m[2]) };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (net.isIPv4(host) && host.startsWith('127.'));
}

/** The host to advertise for a worker of the coordinator at `coordinator`; null: loopback (a one-host job). */
export async function advertiseToward(coordinator: string): Promise<string | null> {
  // A Unix socket (`launch` serves its gRPC on one) is on this host: a one-host job.
  if (coordinator.startsWith('unix:')) return null;
  const { host, port } = splitHostPort(coordinator);
  if (isLoopback(host)) return null;
  const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(port, host, () => resolve());
    });
    const local = socket.address().address;
    if (isLoopback(local)) return null;
    return local;
  } catch (err) {
    throw new UserError(`the coordinator ${coordinator} is not on loopback, and the address other workers can reach this one at cannot be told (${messageOf(err)}): give --advertise HOST (this host's address on the job's network)`, { cause: err });
  } finally {
    socket.close();
  }
}

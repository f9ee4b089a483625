// "Listen or exit 2 naming the flag": every port a user chooses (--metrics-port, a coming
// --dashboard-port, a worker's --zmq-port) that cannot be taken is the user's to fix, so it is a
// UserError naming the flag, the port and who wanted it, never an uncaught EADDRINUSE stack trace.
import type net from 'node:net';
import { UserError } from '../errors.js';

/** Errors of a bind that the user fixes by choosing another port (or address). */
const USER_CODES = new Set(['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL']);

/** The UserError for `flag port` refused with `code` (EADDRINUSE…); `who` names the process ("rank 1"); null for other errors. */
export function portRefused(err: unknown, flag: string, port: number, who = ''): UserError | null {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (!code || !USER_CODES.has(code)) return null;
  const why = code === 'EADDRINUSE' ? 'the port is already in use' : code === 'EACCES' ? 'permission denied' : 'the address is not on this machine';
  return new UserError(`${who ? `${who}: ` : ''}${flag} ${port}: cannot listen (${code}: ${why}); give another port, or 0 for a free one`, { cause: err });
}

/** server.listen(port, host), resolving with the bound port; a refused port rejects with portRefused's UserError. */
export function listenOn(server: net.Server, port: number, host: string, flag: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(portRefused(err, flag, port) ?? err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.removeListener('error', onError);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/**
 * Listening on a configured HOST:PORT, with one error for every listener (gateway tunnel, long-poll,
 * API, admin; agent metrics): LISTEN_FAILED naming the setting and the address, the errno in words.
 */
import type { AddressInfo, Server } from 'node:net';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import { splitHostPort } from './host-port.js';

/** Why a listen failed, in words, by errno (the errno itself is kept in the message). */
const listenFailures: Record<string, string> = {
  EADDRINUSE: 'the address is in use (another process listens there)',
  EACCES: 'permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE)',
  EADDRNOTAVAIL: 'the address is not one of this host\'s',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name could not be resolved now',
};

/**
 * Listens on HOST:PORT (port 0: any free one); resolves with the port bound. A failure is
 * LISTEN_FAILED naming `key` (the setting, e.g. listen.tcp) and the address.
 */
export function bind(server: Server, hostPort: string, key: string): Promise<number> {
  const { host: given, port } = splitHostPort(hostPort);
  const host = given.replace(/^\[(.*)\]$/, '$1');
  return new Promise((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException): void => {
      const code = err.code ?? 'unknown';
      reject(new FerryError(ErrorCode.LISTEN_FAILED, `${key} ${hostPort}: cannot listen: ${listenFailures[code] ?? err.message} (${code})`, { cause: err }));
    };
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

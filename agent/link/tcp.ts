import { connect } from 'node:net';
import { SocketTransport } from '../../protocol/socket-transport.js';
import type { Dialer, Transport } from '../../protocol/transport.js';

/** Parses `tcp://host:port` into a dialer with a connect time-out. */
export function tcpDialer(url: string, opts: { connectTimeoutMs?: number; frameBytesMax?: number } = {}): Dialer {
  const u = new URL(url);
  if (u.protocol !== 'tcp:') throw new Error(`unsupported gateway URL scheme ${u.protocol} (expected tcp://)`);
  const host = u.hostname;
  const port = Number(u.port);
  const connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
  return () =>
    new Promise<Transport>((resolve, reject) => {
      const socket = connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${url} timed out after ${connectTimeoutMs} ms`));
      }, connectTimeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new SocketTransport(socket, opts));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
}

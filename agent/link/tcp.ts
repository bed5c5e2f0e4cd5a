import { connect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { SocketTransport } from '../../protocol/socket-transport.js';
import type { Dialer, Transport } from '../../protocol/transport.js';

/** TLS settings of the dialer: PEM contents (protocol/tls-files.ts loads them from the config's paths). */
export interface DialerTls {
  /** CA certificate(s) for the gateway's certificate; absent: the system's CAs */
  ca?: Buffer | string;
  /** client certificate and key, for a gateway that asks for one */
  cert?: Buffer | string;
  key?: Buffer | string;
  /** the name the gateway certificate must carry (and SNI); default: the URL's host */
  servername?: string;
}

export interface DialerOptions {
  /** bounds connecting and, for tls://, the handshake */
  connectTimeoutMs?: number;
  frameBytesMax?: number;
  tls?: DialerTls;
}

/**
 * Parses `tcp://HOST:PORT` or `tls://HOST:PORT` into a dialer with a connect time-out.
 * For tls:// the gateway's certificate is verified (its chain against `tls.ca` or the system's
 * CAs, its name against the host or `servername`); a failed handshake rejects with TLS_FAILED.
 */
export function tcpDialer(url: string, opts: DialerOptions = {}): Dialer {
  const u = new URL(url);
  if (u.protocol !== 'tcp:' && u.protocol !== 'tls:') throw new FerryError(ErrorCode.CONFIG_INVALID, `unsupported gateway URL scheme ${u.protocol} (expected tcp:// or tls://)`);
  const secure = u.protocol === 'tls:';
  const host = u.hostname;
  const port = Number(u.port);
  const connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
  const transportOpts = opts.frameBytesMax !== undefined ? { frameBytesMax: opts.frameBytesMax } : {};
  return () =>
    new Promise<Transport>((resolve, reject) => {
      let socket: Socket;
      let tcpConnected = false;
      if (secure) {
        const t = opts.tls ?? {};
        // SNI takes names only: an IP address is checked against the certificate's IP SANs without it.
        const servername = t.servername ?? (isIP(host) === 0 ? host : undefined);
        socket = tlsConnect({
          host, port, rejectUnauthorized: true,
          ...(servername !== undefined ? { servername } : {}),
          ...(t.ca !== undefined ? { ca: t.ca } : {}),
          ...(t.cert !== undefined ? { cert: t.cert } : {}),
          ...(t.key !== undefined ? { key: t.key } : {}),
        });
        socket.once('connect', () => (tcpConnected = true));
      } else {
        socket = connect({ host, port });
      }
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${url} timed out after ${connectTimeoutMs} ms${tcpConnected ? ' (during the TLS handshake)' : ''}`));
      }, connectTimeoutMs);
      socket.once(secure ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new SocketTransport(socket, transportOpts));
      });
      socket.once('error', (err: Error & { code?: string }) => {
        clearTimeout(timer);
        socket.destroy();
        if (secure && tcpConnected) {
          reject(new FerryError(ErrorCode.TLS_FAILED, `TLS handshake with ${host}:${port} failed: ${err.message}${err.code ? ` (${err.code})` : ''}`, { cause: err }));
        } else {
          reject(err);
        }
      });
    });
}

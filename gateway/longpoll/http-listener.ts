/**
 * The gateway's HTTP(S) long-poll listener: node:http on `listen.http`, node:https on
 * `listen.https` (with the TCP listener's `tls` files; `tls.ca` asks for client certificates,
 * which reach the session as `peer.certSubject` when verified, exactly as on the TLS port).
 *
 * It takes only `POST /v1/longpoll` with `content-type: application/cbor` and hands the body to
 * LongPollSessions; everything else, and every limit, is refused before the body is read, with a
 * coded status and a JSON body {code, message, retryAfterMs?} (Retry-After on 429 and 503):
 *   404 / 405 / 415 LONGPOLL_NOT_A_REQUEST  another path / method / content type;
 *   503 GATEWAY_BUSY                        past the request rate (per address, then in all);
 *   413 LONGPOLL_BODY_TOO_LARGE             Content-Length, or the bytes streamed, over bodyBytesMax;
 *   408 LONGPOLL_REQUEST_TIMEOUT            the body not received within requestBodyTimeoutMs
 *                                           (a slow sender): answered, then the socket is closed.
 * Sockets: at most `connectionsMax` in all and `socketsPerAddressMax` per address (closed at once
 * beyond); headers within headersTimeoutMs; idle keep-alive sockets closed after keepAliveTimeoutMs.
 * A held request whose client goes away is reported to the sessions (abort), which free the hold.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Log } from '../../common/log.js';
import { ErrorCode } from '../../protocol/errors.js';
import { agentHeader, longpollContentType, longpollPath } from '../../protocol/longpoll/http.js';
import { subjectCN, type TlsFiles } from '../../protocol/tls-files.js';
import type { PeerInfo } from '../../protocol/transport.js';
import { Admission } from '../admission.js';
import { bind } from '../listener.js';
import { refusalReply, type LongPollReply, type LongPollSessions } from './sessions.js';

export interface HttpListenLimits {
  /** bytes of one request body, at most (bodyLimitsFor of the sessions' channel limits) */
  bodyBytesMax: number;
  /** time from the request's headers to its whole body */
  requestBodyTimeoutMs: number;
  /** time for a request's headers (node's headersTimeout) */
  headersTimeoutMs: number;
  /** an idle keep-alive socket is closed after this long */
  keepAliveTimeoutMs: number;
  /** sockets open at once */
  connectionsMax: number;
  socketsPerAddressMax: number;
  /** requests per second in all, and from one address (token buckets, burst of one second) */
  requestsPerSecondMax: number;
  requestsPerAddressPerSecondMax: number;
}

export interface HttpListenOptions {
  /** HOST:PORT, plaintext */
  http?: string;
  /** HOST:PORT, TLS; needs `tlsFiles.cert` and `tlsFiles.key` */
  https?: string;
  tlsFiles?: TlsFiles;
  sessions: LongPollSessions;
  limits: HttpListenLimits;
  log: Log;
  /** for the request-rate buckets (default Date.now) */
  now?: () => number;
  /** for GATEWAY_BUSY retry-after jitter (default Math.random) */
  rng?: () => number;
}

export interface HttpListenerStats {
  /** sockets open now */
  connections: number;
  /** refusals by the listener so far, by code (`socketsMax` for sockets closed at once) */
  refused: Record<string, number>;
}

export interface HttpListener {
  ports: { http?: number; https?: number };
  stats(): HttpListenerStats;
  /** Stops accepting, closes idle sockets, and after `graceMs` (default 1000) every socket. Call LongPollSessions.close() first so held requests are answered. */
  close(graceMs?: number): Promise<void>;
}


function send(res: ServerResponse, r: LongPollReply, close = false): void {
  if (res.headersSent || res.destroyed) return;
  const headers: Record<string, string | number> = { 'content-type': r.contentType, 'content-length': r.body.length, 'cache-control': 'no-store' };
  if (r.retryAfterS !== undefined) headers['retry-after'] = r.retryAfterS;
  if (close) headers.connection = 'close';
  res.writeHead(r.status, headers);
  res.end(r.body);
}

export async function listenHttp(opts: HttpListenOptions): Promise<HttpListener> {
  const { limits, sessions, log } = opts;
  const refused: Record<string, number> = {};
  const note = (code: string): void => {
    refused[code] = (refused[code] ?? 0) + 1;
  };
  // Admission's buckets, with requests in place of connections; nothing is held past the request's start.
  const requestRate = new Admission(
    { connectionsPerAddressMax: Number.MAX_SAFE_INTEGER, sessionsPerSecondMax: limits.requestsPerSecondMax, sessionsPerAddressPerSecondMax: limits.requestsPerAddressPerSecondMax },
    { now: opts.now ?? Date.now, rng: opts.rng ?? Math.random },
  );
  const sockets = new Set<Socket>();
  const perAddress = new Map<string, number>();

  /** Refuses before the body is read: the socket is not reused (its unread body would be the next request). */
  const refuseEarly = (res: ServerResponse, code: string, message: string, status?: number, retryAfterMs?: number): void => {
    note(code);
    const r = refusalReply(code, message, retryAfterMs);
    send(res, status !== undefined ? { ...r, status } : r, true);
  };

  const onRequest = (tls: boolean) => (req: IncomingMessage, res: ServerResponse): void => {
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    const socket = req.socket;
    const address = socket.remoteAddress ?? 'unknown';
    const path = (req.url ?? '').split('?')[0];
    if (path !== longpollPath) return refuseEarly(res, ErrorCode.LONGPOLL_NOT_A_REQUEST, `not a long-poll request: POST ${longpollPath}`, 404);
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return refuseEarly(res, ErrorCode.LONGPOLL_NOT_A_REQUEST, `not a long-poll request: ${longpollPath} takes POST only`, 405);
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== longpollContentType) return refuseEarly(res, ErrorCode.LONGPOLL_NOT_A_REQUEST, `not a long-poll request: the body must be ${longpollContentType}`, 415);
    const rate = requestRate.admit(address);
    if (!rate.ok) return refuseEarly(res, rate.code, rate.reason, undefined, rate.retryAfterMs);
    rate.release();
    const length = req.headers['content-length'];
    if (length !== undefined && Number(length) > limits.bodyBytesMax) {
      return refuseEarly(res, ErrorCode.LONGPOLL_BODY_TOO_LARGE, `long-poll body of ${length} bytes exceeds the maximum of ${limits.bodyBytesMax}`);
    }

    const chunks: Buffer[] = [];
    let bytes = 0;
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      note(ErrorCode.LONGPOLL_REQUEST_TIMEOUT);
      // Answered, then the socket goes: a sender this slow may never finish, and its rest must not be read as a request.
      send(res, refusalReply(ErrorCode.LONGPOLL_REQUEST_TIMEOUT, `long-poll body not received within ${limits.requestBodyTimeoutMs} ms`), true);
      setTimeout(() => socket.destroy(), 200).unref();
    }, limits.requestBodyTimeoutMs);
    timer.unref();
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      bytes += chunk.length;
      if (bytes > limits.bodyBytesMax) {
        done = true;
        clearTimeout(timer);
        req.pause();
        refuseEarly(res, ErrorCode.LONGPOLL_BODY_TOO_LARGE, `long-poll body over the maximum of ${limits.bodyBytesMax} bytes`);
        setTimeout(() => socket.destroy(), 200).unref();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const peer: PeerInfo = { address, tls };
      if (tls) {
        const ts = socket as TLSSocket;
        const cert = ts.authorized ? ts.getPeerX509Certificate() : undefined;
        const cn = cert && subjectCN(cert);
        if (cn !== undefined) peer.certSubject = cn;
      }
      const agentValue = req.headers[agentHeader];
      const agent = typeof agentValue === 'string' ? agentValue : undefined;
      const aborts: (() => void)[] = [];
      res.on('close', () => {
        if (!res.writableFinished) for (const fn of aborts) fn();
      });
      sessions.handle({ body: Buffer.concat(chunks), agent, peer }, { onAbort: (fn) => aborts.push(fn) }).then(
        (r) => send(res, r),
        (err: unknown) => {
          log.error('longpoll: request failed', { error: (err as Error).message, address });
          send(res, refusalReply(ErrorCode.INTERNAL, 'internal error'));
        },
      );
    });
  };

  const onConnection = (socket: Socket): void => {
    socket.on('error', () => undefined);
    const address = socket.remoteAddress ?? 'unknown';
    const n = perAddress.get(address) ?? 0;
    if (sockets.size >= limits.connectionsMax || n >= limits.socketsPerAddressMax) {
      note('socketsMax');
      socket.destroy();
      return;
    }
    sockets.add(socket);
    perAddress.set(address, n + 1);
    socket.once('close', () => {
      sockets.delete(socket);
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left <= 0) perAddress.delete(address);
      else perAddress.set(address, left);
    });
  };

  const serverOptions = {
    keepAlive: true,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    // A backstop behind our own body timer; node checks it only while a request is being received, not while it is held.
    requestTimeout: limits.headersTimeoutMs + limits.requestBodyTimeoutMs + 1000,
    connectionsCheckingInterval: 1000,
    maxHeaderSize: 16 * 1024,
  };
  const servers: Server[] = [];
  const ports: HttpListener['ports'] = {};
  const setUp = (server: Server): void => {
    server.on('connection', onConnection);
    server.on('clientError', (_err, socket: Socket) => {
      // A malformed request line or headers, or a header time-out: node's own 400/408, then gone.
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      socket.destroy();
    });
    servers.push(server);
  };
  try {
    if (opts.http !== undefined) {
      const server = createServer(serverOptions, onRequest(false));
      setUp(server);
      ports.http = await bind(server, opts.http, 'listen.http');
    }
    if (opts.https !== undefined) {
      const files = opts.tlsFiles;
      if (files?.cert === undefined || files.key === undefined) throw new Error('listenHttp: listen.https needs tlsFiles.cert and tlsFiles.key');
      const clientCerts = files.ca !== undefined;
      const server = createHttpsServer({
        ...serverOptions, cert: files.cert, key: files.key, ...(clientCerts ? { ca: files.ca } : {}),
        // Requested, not required: the session decides (gateway/auth.ts), as on the TLS port.
        requestCert: clientCerts, rejectUnauthorized: false, handshakeTimeout: limits.headersTimeoutMs,
      }, onRequest(true));
      server.on('tlsClientError', () => note(ErrorCode.TLS_FAILED));
      setUp(server);
      ports.https = await bind(server, opts.https, 'listen.https');
    }
  } catch (err) {
    for (const s of servers) s.close();
    throw err;
  }

  return {
    ports,
    stats: () => ({ connections: sockets.size, refused: { ...refused } }),
    async close(graceMs = 1000) {
      const closed = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
      for (const s of servers) s.closeIdleConnections();
      const force = setTimeout(() => {
        for (const s of servers) s.closeAllConnections();
      }, graceMs);
      await Promise.all(closed);
      clearTimeout(force);
    },
  };
}

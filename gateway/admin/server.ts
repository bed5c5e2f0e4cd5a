/**
 * The admin endpoint (listen.admin), node:http: `GET /status` (JSON), `GET /history` (JSON),
 * `GET /metrics` (Prometheus text) and `GET /` (the status page). Read-only. Bounded: headers
 * size and time, no request body, connections at once. With a token every request needs
 * `Authorization: Bearer TOKEN`. Every refusal is a status and JSON `{ code, message }`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ErrorCode } from '../../protocol/errors.js';
import type { Log } from '../../common/log.js';
import { hostOf } from '../auth-posture.js';
import { bearerMatches } from './token.js';
import { bind } from '../listener.js';
import { endWithJson } from '../../common/http-raw-reply.js';

export interface AdminLimits {
  requestTimeoutMs: number;
  headersBytesMax: number;
  connectionsMax: number;
}

export interface AdminRoutes {
  status(): unknown;
  history(): unknown;
  metrics(): Promise<{ body: string; contentType: string }>;
  page(): string;
}

export interface AdminServer {
  port: number;
  /** `http://HOST:PORT` */
  url: string;
  close(): Promise<void>;
}

export interface AdminServerOptions {
  /** listen.admin */
  hostPort: string;
  /** absent: no token (loopback only; the config refuses other addresses without one) */
  token?: string;
  limits: AdminLimits;
  routes: AdminRoutes;
  log: Log;
}

function refuse(res: ServerResponse, status: number, code: ErrorCode, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify({ code, message }));
}

async function serve(o: AdminServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (o.token !== undefined && !bearerMatches(req.headers.authorization, o.token)) {
    return refuse(res, 401, ErrorCode.ADMIN_AUTH_FAILED, 'this admin endpoint needs Authorization: Bearer TOKEN (admin.tokenFile)', { 'www-authenticate': 'Bearer' });
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, 405, ErrorCode.ADMIN_METHOD_NOT_ALLOWED, `${req.method ?? '?'} is not allowed: the admin endpoint only reads`, { allow: 'GET, HEAD' });
  if ((req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding'] !== undefined) {
    res.setHeader('connection', 'close');
    return refuse(res, 413, ErrorCode.ADMIN_REQUEST_INVALID, 'the admin endpoint takes no request body');
  }
  const path = (req.url ?? '/').split('?')[0];
  const send = (type: string, body: string): void => {
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  switch (path) {
    case '/status':
      return send('application/json', JSON.stringify(o.routes.status()));
    case '/history':
      return send('application/json', JSON.stringify(o.routes.history()));
    case '/metrics': {
      const m = await o.routes.metrics();
      return send(m.contentType, m.body);
    }
    case '/':
      // The page's only script is inline and it fetches only this origin: nothing from elsewhere may load.
      res.setHeader('content-security-policy', "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:");
      return send('text/html; charset=utf-8', o.routes.page());
    default:
      return refuse(res, 404, ErrorCode.ADMIN_NOT_FOUND, `no ${path} here: try /, /status, /history or /metrics`);
  }
}

/** Binds listen.admin; rejects with LISTEN_FAILED naming the key when the address cannot be had. */
export async function listenAdmin(o: AdminServerOptions): Promise<AdminServer> {
  const { limits } = o;
  const server = createServer({ maxHeaderSize: limits.headersBytesMax, requestTimeout: limits.requestTimeoutMs, headersTimeout: limits.requestTimeoutMs }, (req, res) => {
    serve(o, req, res).catch((err: unknown) => {
      o.log.error('admin: request failed', { path: req.url, error: (err as Error).message });
      if (!res.headersSent) refuse(res, 500, ErrorCode.INTERNAL, 'the admin endpoint failed to answer');
      else res.destroy();
    });
  });
  server.maxConnections = limits.connectionsMax;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code === 'HPE_HEADER_OVERFLOW') return endWithJson(socket, 431, { code: ErrorCode.ADMIN_REQUEST_INVALID, message: `request headers over ${limits.headersBytesMax} bytes (admin.headersBytesMax)` });
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return endWithJson(socket, 408, { code: ErrorCode.ADMIN_REQUEST_TIMEOUT, message: `the request did not arrive within ${limits.requestTimeoutMs} ms (admin.requestTimeoutMs)` });
    endWithJson(socket, 400, { code: ErrorCode.ADMIN_REQUEST_INVALID, message: 'not an HTTP request the admin endpoint reads' });
  });
  const host = hostOf(o.hostPort);
  const bound = await bind(server, o.hostPort, 'listen.admin');
  const shownHost = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return {
    port: bound,
    url: `http://${shownHost}:${bound}`,
    close: () => new Promise<void>((done) => {
      server.close(() => done());
      server.closeAllConnections();
    }),
  };
}

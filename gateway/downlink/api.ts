/**
 * The gateway's application API on `listen.api`: node:http, or node:https with the gateway's `tls`
 * files. Applications queue downlink messages for agents and read their states
 * (gateway/downlink/api-request.ts has the endpoints; docs/downlink.md the whole API).
 *
 * Every request, in this order:
 *   503 GATEWAY_BUSY (Retry-After)  past `requestsInFlightMax` requests in progress;
 *   401 API_AUTH_FAILED             no `Authorization: Bearer TOKEN` of an active application;
 *   404 API_NOT_FOUND / 405 API_METHOD_NOT_ALLOWED (Allow) / 400 API_BODY_INVALID (query);
 *   403 API_FORBIDDEN               the application is limited to other agents (POST and GET alike);
 *   404 API_AGENT_UNKNOWN           a POST for an agent the gateway does not know (`agentKnown`);
 *   415 / 413 / 408 / 400           a POST body: not JSON, over `bodyBytesMax` (by Content-Length,
 *                                   then as it streams), not received within `requestTimeoutMs`,
 *                                   or not a valid message (api-request.ts parseMessageBody);
 *   429 QUEUE_FULL                  the agent's queue is full (fullPolicy reject);
 *   503 STORE_IO                    the queue could not write the message: nothing was queued;
 *   201 {id, state: "queued"}       only once `enqueue` resolved, i.e. the message is durable.
 * Sockets are admitted at accept, before any TLS handshake (gateway/socket-gate.ts): at most
 * `socketsPerAddressMax` per address and `connectionsMax` in all, one past either closed at once;
 * a silent socket (and an HTTPS handshake) is closed after `requestTimeoutMs`.
 * Every error body is JSON {code, message}; no message repeats the token. A refusal that comes
 * before the body was read closes the connection (its unread body would be the next request).
 * Refusals are logged through the gateway's LogSummary: a flood of bad requests costs a bounded
 * number of log lines.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Log, LogFields } from '../../common/log.js';
import { ErrorCode } from '../../protocol/errors.js';
import { dataToJson } from '../../protocol/packet.js';
import { agentIdPattern } from '../../protocol/ids.js';
import type { TlsFiles } from '../../protocol/tls-files.js';
import { appMayReach, type AppEntry, type AppLookup } from '../apps.js';
import { bind } from '../listener.js';
import { endWithJson } from '../../common/http-raw-reply.js';
import { hostOf } from '../auth-posture.js';
import { SocketGate } from '../socket-gate.js';
import type { LogSummary } from '../log-summary.js';
import { bearerToken, isJsonContentType, isMessageId, matchRoute, parseMessageBody, type ApiRoute } from './api-request.js';
import { refusal, type MessageLimits, type Refusal } from './message-rules.js';
import type { DownlinkQueues, MessageView } from './queue.js';

export interface ApiLimits extends MessageLimits {
  /** a request body larger than this is refused (413) */
  bodyBytesMax: number;
  /** a request's headers and body must arrive within this (408) */
  requestTimeoutMs: number;
  /** requests in progress at once; beyond it 503 */
  requestsInFlightMax: number;
  /** sockets open at once, at most; one past it is closed at accept (default apiSocketDefaults) */
  connectionsMax?: number;
  /** sockets one remote address may hold; one past it is closed at accept, before a TLS handshake */
  socketsPerAddressMax?: number;
  /** an idle keep-alive socket is closed after this long */
  keepAliveTimeoutMs?: number;
}

/**
 * The API's socket limits by default (config `limits.api`). Sockets are counted at accept, before
 * any TLS handshake: without a bound, one address held 600 of 600 silent sockets. A silent socket
 * is closed after `requestTimeoutMs` (node's headersTimeout; on HTTPS the handshake too).
 */
export const apiSocketDefaults = { connectionsMax: 1000, socketsPerAddressMax: 64, keepAliveTimeoutMs: 30_000 } as const;

export interface ApiOptions {
  /** HOST:PORT */
  listen: string;
  /** with cert and key: HTTPS */
  tlsFiles?: TlsFiles;
  queues: DownlinkQueues;
  apps: AppLookup;
  /** whether messages may be queued for `agent` (a valid agent ID, checked before) */
  agentKnown(agent: string): boolean;
  limits: ApiLimits;
  log: Log;
  summary: Pick<LogSummary, 'note'>;
}

export interface ApiStats {
  /** requests answered so far, and in progress now */
  requests: number;
  inFlight: number;
  /** messages queued through the API */
  queued: number;
  /** refusals so far, by code */
  refused: Record<string, number>;
}

export interface ApiServer {
  port: number;
  /** `http://HOST:PORT` or `https://HOST:PORT` */
  url: string;
  stats(): ApiStats;
  /** Stops accepting; requests in progress (an enqueue being written) may finish within `graceMs` (default 2000), then every socket closes. */
  close(graceMs?: number): Promise<void>;
}

const jsonType = 'application/json; charset=utf-8';
/** What a Retry-After says when the API is busy, in seconds. */
const busyRetryAfterS = 1;

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string | number> = {}, close = false): void {
  if (res.headersSent || res.destroyed) return;
  const text = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': jsonType, 'content-length': text.length, 'cache-control': 'no-store', ...(close ? { connection: 'close' } : {}), ...headers });
  res.end(text);
}

/** A message as JSON: its data as a value, bytes as {"base64": ...}. */
export function viewJson(m: MessageView): unknown {
  return { ...m, data: dataToJson(m.data) };
}

export async function listenApi(o: ApiOptions): Promise<ApiServer> {
  const { limits, queues } = o;
  const counts = { requests: 0, inFlight: 0, queued: 0 };
  const refused: Record<string, number> = {};
  const gate = new SocketGate<Socket>({
    connectionsMax: limits.connectionsMax ?? apiSocketDefaults.connectionsMax,
    socketsPerAddressMax: limits.socketsPerAddressMax ?? apiSocketDefaults.socketsPerAddressMax,
  });

  const refuse = (req: IncomingMessage, res: ServerResponse, r: Refusal, extra: { headers?: Record<string, string | number>; close?: boolean; fields?: LogFields } = {}): void => {
    refused[r.code] = (refused[r.code] ?? 0) + 1;
    o.summary.note(r.status >= 500 ? 'warn' : 'info', 'api: request refused', r.code, { status: r.status, address: req.socket.remoteAddress ?? 'unknown', ...extra.fields });
    send(res, r.status, { code: r.code, message: r.message }, extra.headers, extra.close);
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    if (counts.inFlight >= limits.requestsInFlightMax) {
      return refuse(req, res, refusal(503, ErrorCode.GATEWAY_BUSY, `the API has ${limits.requestsInFlightMax} requests in progress (limits.api.requestsInFlightMax); try again shortly`), { headers: { 'retry-after': busyRetryAfterS }, close: true });
    }
    counts.inFlight++;
    res.once('close', () => {
      counts.inFlight--;
      counts.requests++;
    });
    const token = bearerToken(req.headers.authorization);
    const app = token === undefined ? undefined : o.apps.byToken(token);
    if (!app) {
      const why = req.headers.authorization === undefined ? 'no Authorization header' : 'the token is not an active application\'s';
      return refuse(req, res, refusal(401, ErrorCode.API_AUTH_FAILED, `${why}: send Authorization: Bearer TOKEN with the token \`ferry gateway add-app\` printed`), { headers: { 'www-authenticate': 'Bearer realm="ferry"' }, close: true });
    }
    const matched = matchRoute(req.method ?? '', req.url ?? '');
    if (!('route' in matched)) return refuse(req, res, matched, { ...(matched.allow ? { headers: { allow: matched.allow } } : {}), close: true, fields: { app: app.name } });
    const { route } = matched;
    const fields = { app: app.name, agent: route.agent.slice(0, 255) };
    if (!agentIdPattern.test(route.agent) && appMayReach(app, route.agent)) {
      return refuse(req, res, refusal(404, ErrorCode.API_AGENT_UNKNOWN, 'the path does not name an agent ID (1-255 of letters, digits and . _ : -)'), { close: true, fields });
    }
    if (!appMayReach(app, route.agent)) {
      return refuse(req, res, refusal(403, ErrorCode.API_FORBIDDEN, `application ${app.name} may not reach agent ${route.agent}`), { close: true, fields });
    }
    if (route.op === 'post') return post(req, res, token!, app, route.agent, fields);
    answerGet(req, res, route, fields);
  };

  const answerGet = (req: IncomingMessage, res: ServerResponse, route: Exclude<ApiRoute, { op: 'post' }>, fields: LogFields): void => {
    if (route.op === 'list') {
      const messages = queues.list(route.agent, { ...(route.state ? { state: route.state } : {}), limit: route.limit });
      return send(res, 200, { messages: messages.map(viewJson) });
    }
    const m = isMessageId(route.id) ? queues.get(route.agent, route.id) : undefined;
    if (!m) return refuse(req, res, refusal(404, ErrorCode.API_MESSAGE_UNKNOWN, `no message ${JSON.stringify(route.id.slice(0, 64))} is known for agent ${route.agent}`), { fields });
    send(res, 200, viewJson(m));
  };

  const post = (req: IncomingMessage, res: ServerResponse, token: string, app: AppEntry, agent: string, fields: LogFields): void => {
    if (!o.agentKnown(agent)) {
      return refuse(req, res, refusal(404, ErrorCode.API_AGENT_UNKNOWN, `agent ${agent} is not known to this gateway (\`ferry gateway add-agent\` registers it)`), { close: true, fields });
    }
    if (!isJsonContentType(req.headers['content-type'])) {
      return refuse(req, res, refusal(415, ErrorCode.API_BODY_INVALID, 'the body must be Content-Type: application/json'), { close: true, fields });
    }
    const length = req.headers['content-length'];
    if (length !== undefined && Number(length) > limits.bodyBytesMax) {
      return refuse(req, res, refusal(413, ErrorCode.API_BODY_TOO_LARGE, `a body of ${length} bytes is over the API's maximum of ${limits.bodyBytesMax} (limits.api.bodyBytesMax)`), { close: true, fields });
    }
    const chunks: Buffer[] = [];
    let bytes = 0;
    let done = false;
    const socket = req.socket;
    // Answered, then the socket goes: a sender this slow or this large may never finish, and its rest must not be read as a request.
    const cut = (r: Refusal): void => {
      done = true;
      clearTimeout(timer);
      req.pause();
      refuse(req, res, r, { close: true, fields });
      setTimeout(() => socket.destroy(), 200).unref();
    };
    const timer = setTimeout(() => {
      if (!done) cut(refusal(408, ErrorCode.API_REQUEST_TIMEOUT, `the body did not arrive within ${limits.requestTimeoutMs} ms (limits.api.requestTimeoutMs)`));
    }, limits.requestTimeoutMs);
    timer.unref();
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      bytes += chunk.length;
      if (bytes > limits.bodyBytesMax) return cut(refusal(413, ErrorCode.API_BODY_TOO_LARGE, `the body is over the API's maximum of ${limits.bodyBytesMax} bytes (limits.api.bodyBytesMax)`));
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      // The token again: a revocation while the body streamed in (up to requestTimeoutMs) must not let this message in (issue 10 case 8).
      const still = o.apps.byToken(token);
      if (!still || !appMayReach(still, agent)) {
        return refuse(req, res, refusal(401, ErrorCode.API_AUTH_FAILED, 'the token is not an active application\'s (revoked while the request was sent)'), { headers: { 'www-authenticate': 'Bearer realm="ferry"' }, close: true, fields });
      }
      const parsed = parseMessageBody(Buffer.concat(chunks), limits);
      if (!('accepted' in parsed)) return refuse(req, res, parsed, { fields });
      queues.enqueue(agent, { ...parsed.accepted, from: app.name }).then(
        (r) => {
          if (!r.ok) return refuse(req, res, refusal(r.code === ErrorCode.QUEUE_FULL ? 429 : 400, r.code, r.message), { fields });
          counts.queued++;
          send(res, 201, { id: r.id, state: 'queued' }, { location: `/v1/agents/${encodeURIComponent(agent)}/messages/${r.id}` });
        },
        (err: unknown) => {
          o.log.error('api: the message could not be queued', { ...fields, err });
          refuse(req, res, refusal(503, ErrorCode.STORE_IO, `the message was not queued: the gateway could not write it (${(err as Error).message.slice(0, 200)}); send it again`), { fields });
        },
      );
    });
  };

  const serverOptions = {
    keepAlive: true,
    keepAliveTimeout: limits.keepAliveTimeoutMs ?? apiSocketDefaults.keepAliveTimeoutMs,
    // Also a silent socket's time-out: node counts it from the connection when no request began.
    headersTimeout: limits.requestTimeoutMs,
    // A backstop behind the body timer; node checks it only while a request is being received.
    requestTimeout: limits.requestTimeoutMs + 1000,
    connectionsCheckingInterval: 1000,
    maxHeaderSize: 16 * 1024,
  };
  const tls = o.tlsFiles?.cert !== undefined && o.tlsFiles.key !== undefined;
  // node's default handshakeTimeout is 120 s: a silent TLS socket would outlive every other bound.
  const server: Server = tls ? createHttpsServer({ ...serverOptions, handshakeTimeout: limits.requestTimeoutMs, cert: o.tlsFiles!.cert, key: o.tlsFiles!.key }, onRequest) : createServer(serverOptions, onRequest);
  server.on('connection', (socket: Socket) => {
    socket.on('error', () => undefined);
    const past = gate.admit(socket);
    if (past === null) return;
    // Counted, and logged as a summary: a stranger can cause any number of these.
    const code = past === 'socketsPerAddressMax' ? ErrorCode.CONNECTIONS_PER_ADDRESS : ErrorCode.GATEWAY_BUSY;
    refused[code] = (refused[code] ?? 0) + 1;
    o.summary.note('info', `api: socket closed at accept (limits.api.${past})`, code, { address: socket.remoteAddress ?? 'unknown' });
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // Malformed request line or headers, headers too large, or too slow: node's own checks, answered in JSON.
    const [status, code, message] = err.code === 'HPE_HEADER_OVERFLOW' ? [431, ErrorCode.API_BODY_INVALID, 'the request headers are over 16 KiB']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, ErrorCode.API_REQUEST_TIMEOUT, `the request did not arrive within ${limits.requestTimeoutMs} ms`]
        : [400, ErrorCode.API_BODY_INVALID, 'not a readable HTTP request'];
    refused[code] = (refused[code] ?? 0) + 1;
    o.summary.note('info', 'api: request refused', code, { status, address: socket.remoteAddress ?? 'unknown' });
    endWithJson(socket, status, { code, message });
    socket.destroy();
  });
  if (tls) server.on('tlsClientError', () => (refused[ErrorCode.TLS_FAILED] = (refused[ErrorCode.TLS_FAILED] ?? 0) + 1));
  const port = await bind(server, o.listen, 'listen.api');
  const host = hostOf(o.listen);

  return {
    port,
    url: `${tls ? 'https' : 'http'}://${host}:${port}`,
    stats: () => ({ ...counts, refused: { ...refused } }),
    async close(graceMs = 2000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Requests in progress are let finish (an enqueue being written answers 201 or 503), within the grace.
      const force = setTimeout(() => server.closeAllConnections(), graceMs);
      const idle = setInterval(() => server.closeIdleConnections(), 50);
      await closed;
      clearTimeout(force);
      clearInterval(idle);
    },
  };
}

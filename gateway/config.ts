import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { shutdownTimeoutMsDefault, shutdownTimeoutMsMax } from '../common/shutdown.js';
import { dataDepthMaxCeiling, dataDepthMaxDefault, packetLimitsDefault } from '../protocol/limits.js';
import { compilePattern } from './routes.js';
import { hostOf, isLoopbackHost, unauthenticatedRemoteProblem } from './auth-posture.js';
import { logSummaryIntervalMsDefault } from './log-summary.js';
import { logFormats } from '../common/log.js';
import { stuckSummaryIntervalMsDefault } from '../common/stuck-log.js';
import { apiSocketDefaults } from './downlink/api.js';
import { gatewayLingerMsDefault, holdMsDefault } from '../protocol/longpoll/hold-policy.js';
import { hostPortProblem } from '../common/host-port.js';

const positiveInt = z.number().int().positive();
const hostPort = z.string().regex(/^[^:]+:\d+$/, 'HOST:PORT, e.g. 127.0.0.1:7800').superRefine((s, ctx) => {
  const problem = hostPortProblem(s, 0);
  if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
});
/** An MQTT broker URL, parsed as a URL here so a bad port or host fails at load, not at the first connect. */
const mqttUrl = z.string().regex(/^mqtts?:\/\/.+/, 'a URL like mqtt://HOST:PORT').refine((u) => URL.canParse(u), 'not a valid URL (a port is 1 to 65535)');
const pattern = z.string().min(1).superRefine((p, ctx) => {
  try {
    compilePattern(p);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `invalid route pattern: ${(err as Error).message}` });
  }
});

const fileRoute = z.strictObject({
  match: pattern,
  handler: z.literal('file'),
  path: z.string().min(1),
  sync: z.enum(['always', 'none']).default('always'),
  /** rotate before the file would grow past this; no rotation when absent */
  rotateBytes: positiveInt.optional(),
  /** rotated files kept: PATH.1 (newest) … PATH.KEEP */
  keep: positiveInt.max(1000).default(5),
});
const mqttRoute = z.strictObject({
  match: pattern,
  handler: z.literal('mqtt'),
  /** credentials in it still work (a warning at start): they belong in username and password/passwordFile */
  url: mqttUrl,
  topic: z.string().min(1).default('ferry/{agent}/{target}'),
  qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(1),
  publishTimeoutMs: positiveInt.default(5000),
  /** publishes sent and not yet acknowledged; also how many packets of one target may be pipelined */
  inflightMax: positiveInt.max(60_000).default(256),
  /** the broker's user name (CONNECT) */
  username: z.string().min(1).optional(),
  password: z.string().min(1).optional(),
  /** a file holding the password, read at start (a trailing newline is dropped); not with `password` */
  passwordFile: z.string().min(1).optional(),
}).refine((r) => r.password === undefined || r.passwordFile === undefined, { path: ['passwordFile'], message: 'give password or passwordFile, not both' });
const webhookRoute = z.strictObject({
  match: pattern,
  handler: z.literal('webhook'),
  url: z.string().regex(/^https?:\/\/.+/i, 'an http:// or https:// URL'),
  timeoutMs: positiveInt.default(5000),
  concurrency: positiveInt.max(256).default(1),
  headers: z.record(
    z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'an HTTP header name'),
    z.string().regex(/^[^\r\n\0]*$/, 'a header value on one line'),
  ).default({}),
  retryAfterMs: positiveInt.default(1000),
  retryAfterMsMin: positiveInt.default(1000),
  retryAfterMsMax: positiveInt.default(60_000),
}).refine((r) => r.retryAfterMsMin <= r.retryAfterMsMax, { path: ['retryAfterMsMin'], message: 'must not exceed retryAfterMsMax' });
const moduleRoute = z.strictObject({
  match: pattern,
  handler: z.literal('module'),
  /** an ES module whose default export is createHandler(options, { log }); relative to the working directory */
  module: z.string().min(1),
  options: z.record(z.string(), z.unknown()).default({}),
});

/** The gateway's configuration file (`ferry gateway --config FILE`). docs/config.md describes every key. */
export const gatewayConfigSchema = z.strictObject({
  listen: z.strictObject({
    /** HOST:PORT for the plaintext TCP tunnel; port 0 picks a free port (printed at start) */
    tcp: hostPort.optional(),
    /** HOST:PORT for the TLS tunnel (needs `tls`); a plaintext client there gets BYE TLS_REQUIRED */
    tls: hostPort.optional(),
    /** HOST:PORT for the HTTP long-poll listener (POST /v1/longpoll) */
    http: hostPort.optional(),
    /** HOST:PORT for the HTTPS long-poll listener (needs `tls`, the same files as listen.tls) */
    https: hostPort.optional(),
    /** HOST:PORT for the application API (downlink: POST/GET /v1/agents/{id}/messages); HTTPS when `tls` is given */
    api: hostPort.optional(),
    /** HOST:PORT for the admin endpoint (GET /status, /metrics, /history, and the status page at /); false: none. Off loopback it needs admin.tokenFile */
    admin: z.union([hostPort, z.literal(false)]).default('127.0.0.1:7990'),
    }).refine((l) => l.tcp !== undefined || l.tls !== undefined || l.http !== undefined || l.https !== undefined, 'give at least one of listen.tcp, listen.tls, listen.http and listen.https'),
  /** PEM files for the TLS listener, read and checked at start; `ca` makes the gateway ask agents for a client certificate */
  tls: z.strictObject({
    cert: z.string().min(1),
    key: z.string().min(1),
    ca: z.string().min(1).optional(),
  }).optional(),
  /** who may open a session: docs/security.md */
  auth: z.strictObject({
    /** true (the default): a registered agent with its token, or a verified client certificate; false: any agent ID is accepted (a loud warning at start) */
    required: z.boolean().default(true),
    /** `required: false` is refused on a listener other hosts can reach (not 127.0.0.0/8, ::1, localhost) unless this is true too */
    allowUnauthenticatedRemote: z.boolean().default(false),
    /** off: client certificates are ignored; accept: a verified certificate whose CN is the agent ID authenticates it; require: one is needed */
    clientCert: z.enum(['off', 'accept', 'require']).default('accept'),
  }).prefault({}),
  dataDir: z.string().min(1),
  /** on SIGTERM, how long the gateway lets handlers finish the packets they hold (and acks them) before it stops anyway (docs/operations.md) */
  shutdownTimeoutMs: positiveInt.max(shutdownTimeoutMsMax).default(shutdownTimeoutMsDefault),
  routes: z.array(z.discriminatedUnion('handler', [fileRoute, mqttRoute, webhookRoute, moduleRoute])).min(1),
  limits: z.strictObject({
    /** the largest frame body read (told to agents in WELCOME); a connection's first frame, before HELLO, is held to 4 KiB (protocol/limits.ts helloFrameBytesMax) */
    frameBytesMax: positiveInt.default(1024 * 1024),
    /** packet data larger than this is rejected for good (NACK DATA_TOO_LARGE; the agent keeps it as a dead letter) */
    packetBytesMax: positiveInt.default(packetLimitsDefault.dataBytesMax),
    /** packet data nested deeper than this is rejected for good (NACK DATA_TOO_DEEP); told to agents in WELCOME */
    packetDepthMax: positiveInt.max(dataDepthMaxCeiling).default(dataDepthMaxDefault),
    /** bytes queued for a connection that does not read them, past which the gateway stops reading from it until they drain */
    writeQueueBytesHigh: positiveInt.min(16 * 1024).default(1024 * 1024),
    /** bytes queued for a connection past which it is ended at once (PEER_NOT_READING) */
    writeQueueBytesMax: positiveInt.default(8 * 1024 * 1024),
    /** a connection paused on writeQueueBytesHigh that reads none of its queue for this long is ended (PEER_NOT_READING) */
    writeStallMs: positiveInt.default(30_000),
    connectionsMax: positiveInt.default(10_000),
    /** connections one remote address may hold; the next gets BYE CONNECTIONS_PER_ADDRESS */
    connectionsPerAddressMax: positiveInt.default(64),
    /** new connections admitted per second (a token bucket, burst of one second); beyond it BYE GATEWAY_BUSY with retryAfterMs */
    sessionsPerSecondMax: positiveInt.default(500),
    /** one remote address's share of sessionsPerSecondMax (its own token bucket, checked first); default a tenth of sessionsPerSecondMax */
    sessionsPerAddressPerSecondMax: positiveInt.optional(),
    /** sessions (distinct agents) held at once; beyond it BYE AGENTS_MAX */
    agentsMax: positiveInt.default(10_000),
    sessionQueuePacketsMax: positiveInt.max(65_535).default(1024),
    sessionQueueBytesMax: positiveInt.default(8 * 1024 * 1024),
    /** packets a slow target may keep waiting for its handler in one session (at most a quarter of sessionQueuePacketsMax); the rest go back to the agent with NACK TARGET_BUSY */
    targetQueuePacketsMax: positiveInt.default(256),
    /** a target with packets but no handler verdict for this long is slow: it keeps only its share, and what it holds is taken off the credit */
    targetSlowMs: positiveInt.default(500),
    /** the retry-after of a TARGET_BUSY NACK */
    busyRetryAfterMs: positiveInt.default(500),
    /** a retryable handler failure is retried in the gateway this many times (if its retry-after is at most retryInPlaceMsMax) before it goes back to the agent as a NACK */
    retriesInPlace: z.number().int().min(0).max(100).default(3),
    retryInPlaceMsMax: positiveInt.default(2000),
    /** how often agents PING (told in WELCOME); peerTimeoutMs should be several times this */
    pingIntervalMs: positiveInt.default(10_000),
    helloTimeoutMs: positiveInt.default(5000),
    peerTimeoutMs: positiveInt.default(30_000),
    /** the HTTP long-poll listeners (listen.http, listen.https) and their sessions: docs/config.md */
    longpoll: z.strictObject({
      holdMs: positiveInt.default(holdMsDefault),
      lingerMs: z.number().int().min(0).default(gatewayLingerMsDefault),
      sessionIdleMs: positiveInt.default(60_000),
      heldRequestsMax: positiveInt.default(10_000),
      requestsPerSessionPerSecondMax: positiveInt.default(200),
      requestsPerAddressPerSecondMax: positiveInt.default(2000),
      requestsPerSecondMax: positiveInt.default(20_000),
      requestBodyTimeoutMs: positiveInt.default(10_000),
      headersTimeoutMs: positiveInt.default(10_000),
      keepAliveTimeoutMs: positiveInt.default(30_000),
      socketsPerAddressMax: positiveInt.default(256),
    }).prefault({}),
    /** the application API (listen.api) */
    api: z.strictObject({
      /** a request body larger than this is refused (413 API_BODY_TOO_LARGE) */
      bodyBytesMax: positiveInt.default(256 * 1024),
      /** a request whose headers and body did not arrive within this is ended (408) */
      requestTimeoutMs: positiveInt.default(10_000),
      /** requests in progress at once, at most; beyond it 503 with Retry-After */
      requestsInFlightMax: positiveInt.default(1000),
      /** sockets open on listen.api at once; one past it is closed at accept */
      connectionsMax: positiveInt.default(apiSocketDefaults.connectionsMax),
      /** sockets one remote address may hold on listen.api; one past it is closed at accept, before a TLS handshake */
      socketsPerAddressMax: positiveInt.default(apiSocketDefaults.socketsPerAddressMax),
      /** an idle keep-alive socket is closed after this long */
      keepAliveTimeoutMs: positiveInt.default(apiSocketDefaults.keepAliveTimeoutMs),
    }).prefault({}),
  }).prefault({}),
  /** messages from applications to agents: docs/downlink.md */
  downlink: z.strictObject({
    /** messages one agent's queue holds (queued or sent and not yet answered), at most */
    queueMessagesMax: positiveInt.max(1_000_000).default(1000),
    /** bytes of those messages (target + data, as credit counts them), at most */
    queueBytesMax: positiveInt.default(4 * 1024 * 1024),
    /** a full queue refuses a new message (QUEUE_FULL), or drops its oldest undelivered one (state dropped) */
    fullPolicy: z.enum(['reject', 'drop-oldest']).default('reject'),
    /** a message's data, at most (bytes as they are, a value as its JSON text) */
    messageBytesMax: positiveInt.max(512 * 1024).default(64 * 1024),
    /** finished messages (acked, rejected, expired, dropped) one agent keeps for GET, the newest; older ones are forgotten */
    historyMessagesMax: z.number().int().min(0).max(1_000_000).default(1000),
    /** an MQTT subscription that queues what is published under it: the rest of the topic after the agent ID is the target */
    mqtt: z.strictObject({
      url: mqttUrl,
      /** must hold {agent} as a whole level and end in /#, e.g. ferry/down/{agent}/# */
      topic: z.string().default('ferry/down/{agent}/#').refine((t) => /^([^+#{}]+\/)*\{agent\}\/#$/.test(t), 'a topic with {agent} as a whole level, ending in /#, e.g. ferry/down/{agent}/#'),
      qos: z.union([z.literal(1), z.literal(2)]).default(1),
      /** a persistent session (clean: false) under this client ID keeps what is published while the gateway is down */
      clientId: z.string().min(1).max(128).default('ferry-gateway-downlink'),
      username: z.string().min(1).optional(),
      password: z.string().min(1).optional(),
      passwordFile: z.string().min(1).optional(),
    }).refine((r) => r.password === undefined || r.passwordFile === undefined, { path: ['passwordFile'], message: 'give password or passwordFile, not both' }).optional(),
  }).prefault({}),
  /** the admin endpoint (listen.admin): docs/operations.md */
  admin: z.strictObject({
    /** a file holding the bearer token (read at start, a trailing newline dropped); needed when listen.admin is not a loopback address */
    tokenFile: z.string().min(1).optional(),
    /** a request whose headers did not all arrive within this is answered 408 and closed */
    requestTimeoutMs: positiveInt.max(600_000).default(10_000),
    /** request headers larger than this are refused (431) */
    headersBytesMax: positiveInt.min(1024).max(65_536).default(8192),
    /** connections open at once to the admin endpoint */
    connectionsMax: positiveInt.max(10_000).default(64),
  }).prefault({}),
  log: z.strictObject({
    level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
    /** refused connections, failed HELLOs and ended sessions: the first of a code is logged whole, then at most one summary line per this long */
    summaryIntervalMs: positiveInt.min(100).default(logSummaryIntervalMsDefault),
    format: z.enum(logFormats).default('auto'),
    /** a failure that repeats (a route's backend down): logged once, then at most one summary line per this long */
    stuckSummaryIntervalMs: positiveInt.min(100).default(stuckSummaryIntervalMsDefault),
  }).prefault({}),
}).superRefine((c, ctx) => {
  // One writer per file: two file handlers on one path would each cut it back to their own length after a failed write.
  const filePaths = new Map<string, number>();
  c.routes.forEach((r, i) => {
    if (r.handler !== 'file') return;
    const p = resolvePath(r.path);
    const first = filePaths.get(p);
    if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['routes', i, 'path'], message: `routes[${first}] writes ${r.path} already: each file route needs a file of its own (one route may match several targets)` });
    else filePaths.set(p, i);
  });
  if (c.limits.writeQueueBytesHigh >= c.limits.writeQueueBytesMax) ctx.addIssue({ code: 'custom', path: ['limits', 'writeQueueBytesHigh'], message: 'must be below limits.writeQueueBytesMax' });
  if (c.listen.tls !== undefined && c.tls === undefined) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'listen.tls needs tls.cert and tls.key' });
  if (c.listen.https !== undefined && c.tls === undefined) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'listen.https needs tls.cert and tls.key' });
  const lp = c.limits.longpoll;
  if (lp.lingerMs > lp.holdMs) ctx.addIssue({ code: 'custom', path: ['limits', 'longpoll', 'lingerMs'], message: 'must not exceed limits.longpoll.holdMs' });
  // The agent waits up to its response time-out (hold + 10 s) before it asks again: a session must outlive that wait.
  if (lp.sessionIdleMs <= lp.holdMs + 10_000) ctx.addIssue({ code: 'custom', path: ['limits', 'longpoll', 'sessionIdleMs'], message: 'must exceed limits.longpoll.holdMs + 10000 (the agent\'s response time-out)' });
  if (c.listen.admin !== false && !isLoopbackHost(hostOf(c.listen.admin)) && c.admin.tokenFile === undefined) {
    ctx.addIssue({ code: 'custom', path: ['admin', 'tokenFile'], message: `listen.admin ${c.listen.admin} is reachable from other hosts: give admin.tokenFile (a bearer token), or bind listen.admin to 127.0.0.1` });
  }
  const unauthenticatedRemote = unauthenticatedRemoteProblem(c);
  if (unauthenticatedRemote !== null) ctx.addIssue({ code: 'custom', path: ['auth', 'required'], message: unauthenticatedRemote });
  if (c.auth.clientCert === 'require' && (c.tls?.ca === undefined || (c.listen.tls === undefined && c.listen.https === undefined))) {
    ctx.addIssue({ code: 'custom', path: ['auth', 'clientCert'], message: "'require' needs listen.tls or listen.https, and tls.ca (the CA that signs agents' client certificates)" });
  }
});

export type GatewayConfig = z.output<typeof gatewayConfigSchema>;
export type RouteConfig = GatewayConfig['routes'][number];

import { join } from 'node:path';
import { z } from 'zod';
import { shutdownTimeoutMsDefault, shutdownTimeoutMsMax } from '../common/shutdown.js';
import { agentIdPattern, agentIdRule } from '../protocol/ids.js';
import { checkTarget, dataBytesMaxDefault } from '../protocol/packet.js';
import { compilePattern } from '../protocol/pattern.js';
import { logFormats } from '../common/log.js';
import { stuckSummaryIntervalMsDefault } from '../common/stuck-log.js';
import { isLoopbackHost } from '../common/loopback.js';
import { hostPortProblem, splitHostPort } from '../common/host-port.js';

/** The same rule packets are held to, checked at load so a bad rule target fails at start. */
const target = z.string().superRefine((s, ctx) => {
  try {
    checkTarget(s);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});
const positiveInt = z.number().int().positive();

/** tcp:// and tls:// are the TCP tunnel; http:// and https:// the HTTP long-poll carrier. */
export const gatewayUrlPattern = /^(tcp|tls|http|https):\/\/[^/:]+:\d+$/;
const gatewayUrl = z.string().regex(gatewayUrlPattern, 'a URL like tcp://HOST:PORT, tls://HOST:PORT, http://HOST:PORT or https://HOST:PORT').superRefine((u, ctx) => {
  const problem = hostPortProblem(u.slice(u.indexOf('://') + 3), 1);
  if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
});
const gateway = z.union([gatewayUrl, z.array(gatewayUrl).min(1, 'a non-empty list of gateway URLs')], {
  error: (issue) => (issue.input === undefined ? 'missing; expected string (a gateway URL) or a list of them' : 'expected a gateway URL (tcp://, tls://, http:// or https://HOST:PORT) or a non-empty list of them'),
});

const serialSource = z.strictObject({
  kind: z.literal('serial'),
  /** how a downlink route names this source (`source`); default: its path */
  name: z.string().min(1).max(64).optional(),
  path: z.string().min(1),
  baudRate: positiveInt.default(115200),
  format: z.enum(['kv', 'json']).default('kv'),
  /** the first wait before the device is opened again; each failed open doubles it (with jitter) up to reopenDelayMsMax */
  reopenDelayMs: positiveInt.default(1000),
  reopenDelayMsMax: positiveInt.default(30_000),
}).refine((s) => s.reopenDelayMsMax >= s.reopenDelayMs, { path: ['reopenDelayMsMax'], message: 'must be at least reopenDelayMs' });

const rule = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('threshold'), key: z.string().min(1), above: z.number(), hysteresis: z.number().nonnegative().default(0), target }),
  z.strictObject({ kind: z.literal('delta'), key: z.string().min(1), delta: z.number().positive(), target }),
  z.strictObject({ kind: z.literal('heartbeat'), everyMs: positiveInt, target }),
]);

const pattern = z.string().min(1).superRefine((p, ctx) => {
  try {
    compilePattern(p);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `invalid target pattern: ${(err as Error).message}` });
  }
});

/** Where a downlink message goes on the device, by its target (docs/downlink.md). */
const downlinkRoute = z.discriminatedUnion('to', [
  z.strictObject({
    match: pattern, to: z.literal('serial'),
    /** the serial source (its `name`, else its `path`) whose device gets the message as a command line */
    source: z.string().min(1),
    /** the device must answer `ok ...` or `err ...` within this */
    timeoutMs: positiveInt.default(5000),
  }),
  z.strictObject({
    match: pattern, to: z.literal('local'),
    /** a subscriber on the local socket must ack or refuse within this */
    timeoutMs: positiveInt.default(10_000),
  }),
  z.strictObject({
    match: pattern, to: z.literal('exec'),
    /** the program and its arguments (no shell); the message's data arrives on its stdin */
    command: z.array(z.string().min(1)).min(1),
    /** killed (SIGKILL) past this, and the message refused with DOWNLINK_TIMEOUT */
    timeoutMs: positiveInt.default(10_000),
  }),
]);

/** The agent's configuration file (`ferry agent --config FILE`). docs/config.md describes every key. */
export const agentConfigSchema = z.strictObject({
  /** the agent's ID: the identity of its packets, also across restarts */
  id: z.string().regex(agentIdPattern, agentIdRule),
  /**
   * where the gateway listens: tcp://HOST:PORT (plaintext), tls://HOST:PORT, or the HTTP long-poll
   * carrier at http://HOST:PORT or https://HOST:PORT; or a list of these in order of preference
   */
  gateway,
  /** sent in HELLO; the gateway checks it when auth.required (`ferry gateway add-agent` prints it) */
  token: z.string().min(1).max(1024).optional(),
  /** for a tls:// or https:// gateway: PEM files, read and checked at start */
  tls: z.strictObject({
    /** CA certificate(s) that sign the gateway's certificate; default: the system's CAs */
    ca: z.string().min(1).optional(),
    /** client certificate (subject CN = this agent's id) and its key, for a gateway with tls.ca */
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    /** the name the gateway certificate must carry; default: the gateway URL's host */
    servername: z.string().min(1).optional(),
  }).optional(),
  dataDir: z.string().min(1),
  /** a hardware profile name (hw/profiles) or path: store size and in-flight window follow from it */
  profile: z.string().min(1).optional(),
  /** the local API's Unix socket; default DATADIR/agent.sock */
  socket: z.string().min(1).optional(),
  /** the group (name or number) that may use the local API besides the agent's user: the socket is 0660 and chowned to it */
  socketGroup: z.union([z.string().min(1).regex(/^[A-Za-z0-9._-]+$/, 'a group name or number'), z.number().int().nonnegative()]).optional(),
  dataBytesMax: positiveInt.max(16 * 1024 * 1024).default(dataBytesMaxDefault),
  store: z.strictObject({
    sync: z.enum(['always', 'batch', 'none']).default('always'),
    batchWindowMs: z.number().int().min(1).max(10).default(10),
    bytesMax: positiveInt.optional(),
    fullPolicy: z.enum(['drop-oldest', 'reject', 'priority']).default('drop-oldest'),
    segmentBytes: positiveInt.min(4096).optional(),
  }).prefault({}),
  link: z.strictObject({
    inflightPacketsMax: positiveInt.max(65_535).optional(),
    framePacketsMax: positiveInt.max(10_000).default(256),
    /** a DATA frame's packet bytes, at most; keep it under the gateway's limits.frameBytesMax */
    frameBytesMax: positiveInt.default(256 * 1024),
    /** packets the gateway refused for now (NACK with retry-after) kept for resending; default: the in-flight window */
    retryPacketsMax: positiveInt.max(65_535).optional(),
    retryBytesMax: positiveInt.default(4 * 1024 * 1024),
    reconnectDelayMsMin: positiveInt.default(100),
    reconnectDelayMsMax: positiveInt.default(30_000),
    connectTimeoutMs: positiveInt.default(5000),
    helloTimeoutMs: positiveInt.default(5000),
    pingIntervalMs: positiveInt.default(5000),
    peerTimeoutMs: positiveInt.default(20_000),
    /** with several gateway URLs: one that has not connected within this is given up for the next */
    fallbackAfterMs: positiveInt.default(10_000),
    /** with several gateway URLs, while on a fallback: how often the more preferred ones are tried */
    probeIntervalMs: positiveInt.default(300_000),
  }).prefault({}),
  sources: z.array(serialSource).default([]),
  /** messages from applications, through the gateway, to consumers on this device */
  downlink: z.strictObject({
    /** messages the gateway may send before this agent answered them (its downlink window) */
    messagesMax: positiveInt.max(1024).default(32),
    /** their bytes (target + data), at most */
    bytesMax: positiveInt.default(256 * 1024),
    /** answered message IDs remembered (on disk) so a message sent again is never handed on twice; at least messagesMax */
    dedupIdsMax: positiveInt.max(1_000_000).default(4096),
    /** tried in order, the first whose `match` fits the target wins; no match: refused with DOWNLINK_NO_ROUTE */
    routes: z.array(downlinkRoute).default([]),
  }).prefault({}),
  rules: z.array(rule).default([]),
  /** how often time-driven rules (heartbeat) are evaluated */
  tickMs: positiveInt.default(50),
  /** on SIGTERM, how long the agent waits for the gateway to ack the packets it already sent before it stops anyway (docs/operations.md) */
  shutdownTimeoutMs: positiveInt.max(shutdownTimeoutMsMax).default(shutdownTimeoutMsDefault),
  log: z.strictObject({
    level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
    format: z.enum(logFormats).default('auto'),
    /** a failure that repeats (gateway unreachable, device missing): logged once, then at most one summary line per this long */
    stuckSummaryIntervalMs: positiveInt.min(100).default(stuckSummaryIntervalMsDefault),
  }).prefault({}),
  /** Prometheus metrics (GET /metrics, docs/operations.md); off unless `listen` is given */
  metrics: z.strictObject({
    /** HOST:PORT, or a PORT alone (host 127.0.0.1); port 0 picks a free one */
    listen: z.union([z.number().int().min(0), z.string().regex(/^(.+:)?\d+$/, 'HOST:PORT or PORT, e.g. 127.0.0.1:9464')]).optional(),
    /** a host other than loopback is refused unless this is true: the metrics carry no secrets, but name targets and rates */
    allowRemote: z.boolean().default(false),
  }).prefault({}),
}).superRefine((c, ctx) => {
  const urls = gatewayUrls(c);
  if (c.tls !== undefined && !urls.some(isSecureUrl)) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'tls settings need a tls:// or https:// gateway URL' });
  urls.forEach((u, i) => {
    if (urls.indexOf(u) !== i) ctx.addIssue({ code: 'custom', path: ['gateway', i], message: `${u} is already in the list` });
  });
  if (c.downlink.dedupIdsMax < c.downlink.messagesMax) ctx.addIssue({ code: 'custom', path: ['downlink', 'dedupIdsMax'], message: 'must be at least downlink.messagesMax' });
  const sourceNames = c.sources.map((s) => s.name ?? s.path);
  c.downlink.routes.forEach((r, i) => {
    if (r.to === 'serial' && !sourceNames.includes(r.source)) ctx.addIssue({ code: 'custom', path: ['downlink', 'routes', i, 'source'], message: `no serial source named ${r.source} (sources: ${sourceNames.join(', ') || 'none'})` });
  });
  const m = metricsListen(c);
  if (m && m.port > 65_535) ctx.addIssue({ code: 'custom', path: ['metrics', 'listen'], message: `port ${m.port} is out of range (0-65535)` });
  if (m && !c.metrics.allowRemote && !isLoopbackHost(m.host)) {
    ctx.addIssue({ code: 'custom', path: ['metrics', 'listen'], message: `${m.host} is not a loopback address: bind to 127.0.0.1, or add metrics.allowRemote: true` });
  }
  if (c.tls !== undefined && (c.tls.cert === undefined) !== (c.tls.key === undefined)) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'tls.cert and tls.key go together: give both or neither' });
});

export type AgentConfig = z.output<typeof agentConfigSchema>;

/** The local API's Unix socket: `socket`, else DATADIR/agent.sock. */
export const socketPathOf = (config: Pick<AgentConfig, 'socket' | 'dataDir'>): string => config.socket ?? join(config.dataDir, 'agent.sock');

/** The gateway URLs in order of preference (one, or the list). */
export function gatewayUrls(c: { gateway: string | readonly string[] }): string[] {
  return typeof c.gateway === 'string' ? [c.gateway] : [...c.gateway];
}

/** tls:// and https:// URLs use the `tls` keys. */
export function isSecureUrl(url: string): boolean {
  return url.startsWith('tls://') || url.startsWith('https://');
}

/** http:// and https:// URLs mean the HTTP long-poll carrier. */
export function isLongPollUrl(url: string): boolean {
  return url.startsWith('http://') || url.startsWith('https://');
}

/** Where the metrics server listens, or null when it is off. */
export function metricsListen(c: { metrics: { listen?: number | string | undefined } }): { host: string; port: number } | null {
  const l = c.metrics.listen;
  if (l === undefined) return null;
  if (typeof l === 'number') return { host: '127.0.0.1', port: l };
  return l.includes(':') ? splitHostPort(l) : { host: '127.0.0.1', port: Number(l) };
}


/**
 * The gateway without its real IO: the dispatch log, the routes and their handlers, and the
 * sessions (one per agent) on whatever transports it is handed. gateway/main.ts wires it to a
 * listener, the real clock and node:fs; the simulator (test/sim/) wires it to simulated ones.
 */
import type { Clock } from '../common/clock.js';
import type { Files } from '../common/files.js';
import type { Log } from '../common/log.js';
import { ErrorCode } from '../protocol/errors.js';
import type { Transport } from '../protocol/transport.js';
import type { GatewayConfig } from './config.js';
import { DispatchLog } from './dispatch-log.js';
import type { Handler } from './handlers/handler.js';
import { RouteTrouble } from './route-trouble.js';
import type { StuckLog } from '../common/stuck-log.js';
import { RouteTable } from './route-table.js';
import { Session, type SessionDeps } from './session.js';
import { within } from '../common/shutdown.js';
import type { DownlinkQueues } from './downlink/queue.js';
import type { GatewayObserver } from './admin/observer.js';
import { observedHandler, type Stopwatch } from './admin/observed-handler.js';

/** The limits the core applies (the listener's own limits stay with the listener). */
export type CoreLimits = Pick<
  GatewayConfig['limits'],
  | 'helloTimeoutMs' | 'peerTimeoutMs' | 'pingIntervalMs' | 'sessionQueuePacketsMax' | 'sessionQueueBytesMax' | 'targetQueuePacketsMax'
  | 'targetSlowMs' | 'busyRetryAfterMs' | 'retriesInPlace' | 'retryInPlaceMsMax' | 'packetBytesMax' | 'agentsMax'
> & Partial<Pick<GatewayConfig['limits'], 'packetDepthMax' | 'frameBytesMax'>>;

export interface GatewayCoreOptions {
  clock: Clock;
  log: Log;
  /** where the dispatch log lives; absent: node:fs */
  files?: Files;
  dataDir: string;
  /** the dispatch log is compacted once its file passes this size (default: DispatchLog's) */
  dispatchLogCompactBytes?: number;
  /** routes in configuration order, first match wins; the core closes their handlers */
  routes: { match: string; handler: Handler }[];
  limits: CoreLimits;
  authenticate?: SessionDeps['authenticate'];
  /** where sessions log refusals and ends (first whole, then summaries); absent: a line each */
  logSummary?: SessionDeps['summary'];
  newSessionId(): string;
  /** spreads the retry-after of an AGENTS_MAX refusal */
  rng: () => number;
  /** the downlink queues (opened by the caller, closed by the core); absent: no downlink */
  downlink?: DownlinkQueues;
  /** where routes' repeated failures are logged (once, then summaries); absent: a line per failure */
  stuck?: StuckLog;
  /** told of sessions, packets, PINGs, handler verdicts and dispatch log commits (status, metrics); absent: nobody watches */
  observer?: GatewayObserver;
  /** times handler calls for the observer; default: the clock, in whole ms */
  stopwatch?: Stopwatch;
}

export interface GatewayCoreStats {
  sessions: number;
  dispatched: number;
  rejected: number;
  duplicates: number;
  retried: number;
  logSyncs: number;
}

export interface GatewayCore {
  /** Starts a session on a new connection. */
  accept(t: Transport): Session;
  /** The live session of each agent. */
  readonly sessions: ReadonlyMap<string, Session>;
  readonly dispatchLog: DispatchLog;
  readonly downlink: DownlinkQueues | undefined;
  stats(): GatewayCoreStats;
  /** Ends every session with a BYE. */
  byeAll(code: ErrorCode, reason: string): void;
  /** New packets go to these routes from now on; the old handlers close once the packets they hold are done (SIGHUP). */
  replaceRoutes(routes: { match: string; handler: Handler }[]): void;
  /**
   * Stops taking work (a new transport gets BYE SHUTDOWN, a new packet NACK SHUTDOWN) and waits,
   * at most `timeoutMs`, for the packets in handlers to be recorded and acked. Resolves with how
   * many were still in a handler at the end (0: all done).
   */
  drain(timeoutMs: number): Promise<{ inHandlers: number }>;
  /** Ends every session, then closes the handlers and the dispatch log. */
  close(): Promise<void>;
}

export async function createGatewayCore(o: GatewayCoreOptions): Promise<GatewayCore> {
  const { clock, log, limits } = o;
  const sessions = new Map<string, Session>();
  const { observer } = o;
  const dispatchLog = await DispatchLog.open(o.dataDir, log, {
    ...(o.files ? { files: o.files } : {}), ...(observer ? { commitTimer: () => observer.commitTimer() } : {}), ...(o.dispatchLogCompactBytes !== undefined ? { compactBytes: o.dispatchLogCompactBytes } : {}),
  });
  const stopwatch: Stopwatch = o.stopwatch ?? (() => {
    const t0 = clock.now();
    return () => (clock.now() - t0) / 1000;
  });
  // A route is named by its pattern in the status and the metrics (`route` label).
  // One observed wrapper per handler, so a handler a reload keeps is the same one the route table holds.
  let wrapped = new Map<Handler, Handler>();
  const observed = (rs: { match: string; handler: Handler }[]): { match: string; handler: Handler }[] => {
    if (!observer) return rs;
    const next = new Map<Handler, Handler>();
    const out = rs.map((r) => {
      const w = wrapped.get(r.handler) ?? observedHandler(r.handler, r.match, observer, stopwatch);
      next.set(r.handler, w);
      return { match: r.match, handler: w };
    });
    wrapped = next;
    return out;
  };
  // Sessions look the router up per packet, so a reload reaches sessions already open.
  const routes = new RouteTable(observed(o.routes), { clock, log, inUse: (h) => [...sessions.values()].some((s) => s.holds(h)) });
  // Keyed by the handlers sessions are given (the table's); a reload names them again.
  const trouble = o.stuck ? new RouteTrouble(o.stuck, routes.entries) : undefined;
  let draining = false;
  const counters = { dispatched: 0, rejected: 0, duplicates: 0, retried: 0 };
  const inDispatch: SessionDeps['inDispatch'] = new Map();
  const sessionOptions = {
    helloTimeoutMs: limits.helloTimeoutMs, peerTimeoutMs: limits.peerTimeoutMs, pingIntervalMs: limits.pingIntervalMs,
    queuePacketsMax: limits.sessionQueuePacketsMax, queueBytesMax: limits.sessionQueueBytesMax,
    targetQueuePacketsMax: limits.targetQueuePacketsMax, targetSlowMs: limits.targetSlowMs, busyRetryAfterMs: limits.busyRetryAfterMs,
    retriesInPlace: limits.retriesInPlace, retryInPlaceMsMax: limits.retryInPlaceMsMax, packetBytesMax: limits.packetBytesMax,
    ...(limits.packetDepthMax !== undefined ? { packetDepthMax: limits.packetDepthMax } : {}),
    ...(limits.frameBytesMax !== undefined ? { frameBytesMax: limits.frameBytesMax } : {}),
  };
  const deps: SessionDeps = {
    clock, log, dispatchLog, router: routes.router, counters, inDispatch,
    newSessionId: o.newSessionId,
    ...(o.authenticate ? { authenticate: o.authenticate } : {}),
    ...(o.logSummary ? { summary: o.logSummary } : {}),
    ...(o.downlink ? { downlink: o.downlink } : {}),
    ...(trouble ? { trouble } : {}),
    ...(observer ? { observer } : {}),
    register(agent, s) {
      const older = sessions.get(agent);
      if (!older && sessions.size >= limits.agentsMax) {
        return { ok: false, code: ErrorCode.AGENTS_MAX, message: `the gateway holds its maximum of ${limits.agentsMax} agents`, retryAfterMs: 5000 + Math.floor(o.rng() * 25_000) };
      }
      // One session per agent: a reconnect replaces a session the gateway still thinks is alive.
      older?.bye(ErrorCode.SESSION_REPLACED, 'a newer session of this agent connected');
      sessions.set(agent, s);
      return { ok: true };
    },
    unregister(agent, s) {
      if (sessions.get(agent) === s) sessions.delete(agent);
    },
  };
  const byeAll = (code: ErrorCode, reason: string): void => {
    for (const s of sessions.values()) s.bye(code, reason);
  };
  return {
    accept: (t) => {
      const s = new Session(t, sessionOptions, deps);
      if (draining) s.bye(ErrorCode.SHUTDOWN, 'gateway stopping');
      return s;
    },
    sessions,
    dispatchLog,
    downlink: o.downlink,
    stats: () => ({ sessions: sessions.size, ...counters, logSyncs: dispatchLog.syncs }),
    byeAll,
    replaceRoutes(next) {
      routes.replace(observed(next));
      trouble?.rename(routes.entries);
      deps.router = routes.router;
    },
    async drain(timeoutMs) {
      draining = true;
      // Sessions that said no HELLO yet are not in `sessions`; they hold no packets either.
      await within(Promise.all([...sessions.values()].map((s) => s.drain())), timeoutMs, clock);
      return { inHandlers: [...sessions.values()].reduce((n, s) => n + s.inHandlers, 0) };
    },
    async close() {
      byeAll(ErrorCode.SHUTDOWN, 'gateway stopping');
      await routes.close();
      await dispatchLog.close();
      await o.downlink?.close();
    },
  };
}

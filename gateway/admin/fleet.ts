/**
 * The gateway's live state for `GET /status`, `GET /history` and the status page: agents (also
 * recently disconnected ones), routes with their handlers' health, and the dispatch history of
 * the last hour. Bounded: at most `agentsMax` connected (the gateway's own bound) plus
 * `disconnectedAgentsMax` remembered, each with a 60-slot rate ring; a 360-slot history.
 */
import { CountRing } from './count-ring.js';
import type { GatewayObserver, PingBacklog, TransportKind } from './observer.js';

export const historyBucketMs = 10_000;
export const historyBucketsMax = 360; // an hour of 10 s buckets
export const disconnectedAgentsMaxDefault = 1000;

export interface AgentStatus {
  id: string;
  state: 'connected' | 'disconnected';
  transport: TransportKind;
  address: string | null;
  session: string;
  /** ms since the epoch */
  connectedSinceMs: number;
  lastSeenMs: number;
  disconnectedAtMs: number | null;
  /** sessions opened since the gateway started, minus the first */
  reconnects: number;
  /** what the agent's last PING said (null before its first PING, or from an agent that does not tell) */
  backlog: (PingBacklog & { reportedAtMs: number }) | null;
  /** packets received per second over the last minute */
  packetsPerSecond: number;
}

export interface RouteStatus {
  route: string;
  handler: string;
  dispatched: number;
  failures: number;
  failuresByCode: Record<string, number>;
  /** dispatches and failures per second over the last minute */
  dispatchedPerSecond: number;
  failuresPerSecond: number;
  /** idle: no verdict yet; ok: the last verdict was a success; failing: the last was a failure (reason redacted) */
  health: { state: 'idle' | 'ok' | 'failing'; code?: string; reason?: string; sinceMs?: number };
}

interface AgentEntry extends Omit<AgentStatus, 'packetsPerSecond'> {
  rate: CountRing;
}

interface RouteEntry extends Omit<RouteStatus, 'dispatchedPerSecond' | 'failuresPerSecond'> {
  okRing: CountRing;
  failRing: CountRing;
}

export interface FleetViewOptions {
  now(): number;
  /** the routes in configuration order: their label (the match pattern) and handler kind */
  routes: { route: string; handler: string }[];
  /** takes secrets and URLs out of a handler's failure message (common/redact.ts) */
  redact(text: string): string;
  disconnectedAgentsMax?: number;
}

export class FleetView implements GatewayObserver {
  private readonly agents = new Map<string, AgentEntry>();
  private readonly routes = new Map<string, RouteEntry>();
  private readonly dispatchedHistory = new CountRing(historyBucketMs, historyBucketsMax);
  private readonly failureHistory = new CountRing(historyBucketMs, historyBucketsMax);
  private readonly sessionsOpened = new Map<string, number>();
  readonly startedAtMs: number;

  constructor(private readonly o: FleetViewOptions) {
    this.startedAtMs = o.now();
    this.setRoutes(o.routes);
  }

  /** The routes in force (at start, and after each SIGHUP): one kept with its pattern and handler keeps its counts. */
  setRoutes(routes: { route: string; handler: string }[]): void {
    const old = new Map(this.routes);
    this.routes.clear();
    for (const r of routes) {
      if (this.routes.has(r.route)) continue; // a repeated pattern never matches: the first one wins
      const kept = old.get(r.route);
      this.routes.set(r.route, kept?.handler === r.handler ? kept : {
        route: r.route, handler: r.handler, dispatched: 0, failures: 0, failuresByCode: {}, health: { state: 'idle' },
        okRing: new CountRing(1000, 60), failRing: new CountRing(1000, 60),
      });
    }
  }

  sessionOpened(s: { agent: string; session: string; transport: TransportKind; address: string | undefined }): void {
    const now = this.o.now();
    const opened = (this.sessionsOpened.get(s.agent) ?? 0) + 1;
    this.sessionsOpened.set(s.agent, opened);
    const old = this.agents.get(s.agent);
    this.agents.delete(s.agent); // re-inserted last: the map's order is the order of last change
    this.agents.set(s.agent, {
      id: s.agent, state: 'connected', transport: s.transport, address: s.address ?? null, session: s.session,
      connectedSinceMs: now, lastSeenMs: now, disconnectedAtMs: null, reconnects: opened - 1,
      backlog: old?.backlog ?? null, rate: old?.rate ?? new CountRing(1000, 60),
    });
    this.forgetOldest();
  }

  sessionClosed(agent: string, session: string): void {
    const a = this.agents.get(agent);
    if (!a || a.session !== session || a.state !== 'connected') return;
    a.state = 'disconnected';
    a.disconnectedAtMs = this.o.now();
    this.agents.delete(agent);
    this.agents.set(agent, a);
    this.forgetOldest();
  }

  packetsReceived(agent: string, packets: number): void {
    const a = this.agents.get(agent);
    if (!a) return;
    const now = this.o.now();
    a.lastSeenMs = now;
    a.rate.add(now, packets);
  }

  pinged(agent: string, backlog: PingBacklog): void {
    const a = this.agents.get(agent);
    if (!a) return;
    a.lastSeenMs = this.o.now();
    if (backlog.backlogPackets !== undefined || backlog.backlogBytes !== undefined) a.backlog = { ...backlog, reportedAtMs: a.lastSeenMs };
  }

  handled(route: string, _seconds: number, v: { ok: true } | { ok: false; code: string; cause: string; retryable: boolean }): void {
    const now = this.o.now();
    // The history counts every verdict, also a replaced handler's late ones for a route a reload removed.
    (v.ok ? this.dispatchedHistory : this.failureHistory).add(now);
    const r = this.routes.get(route);
    if (!r) return;
    if (v.ok) {
      r.dispatched++;
      r.okRing.add(now);
      if (r.health.state !== 'ok') r.health = { state: 'ok', sinceMs: now };
      return;
    }
    r.failures++;
    r.failuresByCode[v.code] = (r.failuresByCode[v.code] ?? 0) + 1;
    r.failRing.add(now);
    const reason = this.o.redact(v.cause).slice(0, 500);
    r.health = { state: 'failing', code: v.code, reason, sinceMs: r.health.state === 'failing' ? r.health.sinceMs! : now };
  }

  commitTimer(): () => void {
    return () => {};
  }

  /** Connected agents first, then the disconnected ones, most recent change first. */
  agentList(): AgentStatus[] {
    const now = this.o.now();
    const all = [...this.agents.values()].reverse().map(({ rate, ...a }) => ({ ...a, packetsPerSecond: rate.perSecond(now) }));
    return [...all.filter((a) => a.state === 'connected'), ...all.filter((a) => a.state !== 'connected')];
  }

  routeList(): RouteStatus[] {
    const now = this.o.now();
    return [...this.routes.values()].map(({ okRing, failRing, ...r }) => ({
      ...r, failuresByCode: { ...r.failuresByCode }, health: { ...r.health },
      dispatchedPerSecond: okRing.perSecond(now), failuresPerSecond: failRing.perSecond(now),
    }));
  }

  connectedCount(): number {
    let n = 0;
    for (const a of this.agents.values()) if (a.state === 'connected') n++;
    return n;
  }

  /** Dispatches and failures per 10 s bucket over the last hour, oldest first. */
  history(): { bucketMs: number; buckets: { t: number; dispatched: number; failures: number }[] } {
    const now = this.o.now();
    const failures = this.failureHistory.series(now);
    return {
      bucketMs: historyBucketMs,
      buckets: this.dispatchedHistory.series(now).map(([t, dispatched], i) => ({ t, dispatched, failures: failures[i]![1] })),
    };
  }

  /** Drops the disconnected agents that changed longest ago, past the bound. */
  private forgetOldest(): void {
    const max = this.o.disconnectedAgentsMax ?? disconnectedAgentsMaxDefault;
    let disconnected = this.agents.size - this.connectedCount();
    for (const [id, a] of this.agents) {
      if (disconnected <= max) break;
      if (a.state === 'connected') continue;
      this.agents.delete(id);
      this.sessionsOpened.delete(id);
      disconnected--;
    }
  }
}

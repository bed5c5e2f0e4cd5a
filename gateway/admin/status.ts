/** The document `GET /status` answers (and `ferry status --gateway` prints, and the page renders). */
import type { AgentStatus, FleetView, RouteStatus } from './fleet.js';

export interface Listener {
  /** tcp, tls, http, https (long-poll), api, admin */
  kind: string;
  address: string;
  port: number;
}

export interface DownlinkQueueStatus {
  agent: string;
  queued: number;
  inFlight: number;
  bytes: number;
}

export interface GatewayStatus {
  role: 'gateway';
  /** ms since the epoch */
  nowMs: number;
  startedAtMs: number;
  listeners: Listener[];
  agents: AgentStatus[];
  routes: RouteStatus[];
  downlink: { queued: number; delivered: number; queues: DownlinkQueueStatus[] };
  totals: { sessions: number; dispatched: number; rejected: number; duplicates: number; retried: number };
}

/** Downlink queues listed in one status, at most (the fullest first). */
export const statusQueuesMax = 100;

export interface StatusSources {
  now(): number;
  fleet: FleetView;
  listeners(): Listener[];
  downlink(): { queued: number; delivered: number; queues: DownlinkQueueStatus[] };
  totals(): GatewayStatus['totals'];
}

export function buildStatus(s: StatusSources): GatewayStatus {
  return {
    role: 'gateway', nowMs: s.now(), startedAtMs: s.fleet.startedAtMs, listeners: s.listeners(),
    agents: s.fleet.agentList(), routes: s.fleet.routeList(), downlink: s.downlink(), totals: s.totals(),
  };
}

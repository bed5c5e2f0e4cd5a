/**
 * The admin endpoint as the gateway's main.ts starts it: the status view and the metrics (both
 * observers of the core), and the HTTP server on listen.admin. It binds before the gateway's
 * other listeners, so a taken admin port stops the start before any agent can connect; what the
 * status shows of the rest (ports, totals, downlink) is attached once the gateway runs.
 */
import { readFileSync } from 'node:fs';
import type { Log } from '../../common/log.js';
import type { GatewayConfig } from '../config.js';
import { FleetView } from './fleet.js';
import { GatewayMetrics } from './metrics.js';
import { observeAll, type GatewayObserver } from './observer.js';
import { renderPage } from './page.js';
import { listenAdmin } from './server.js';
import { buildStatus, type GatewayStatus, type StatusSources } from './status.js';
import { parseAdminToken } from './token.js';

export type { GatewayObserver } from './observer.js';
export type { GatewayStatus } from './status.js';

/** What the running gateway tells the status (attached once it runs). */
export type AdminSources = Pick<StatusSources, 'listeners' | 'downlink' | 'totals'>;

export interface Admin {
  observer: GatewayObserver;
  port: number;
  url: string;
  attach(sources: AdminSources): void;
  /** A reload put these routes in force (the status shows them from now on). */
  routesChanged(routes: GatewayConfig['routes']): void;
  close(): Promise<void>;
}

export async function startAdmin(o: { config: GatewayConfig; log: Log; redact: (text: string) => string; now: () => number }): Promise<Admin | undefined> {
  const { config } = o;
  const hostPort = config.listen.admin;
  if (hostPort === false) return undefined;
  const tokenFile = config.admin.tokenFile;
  const token = tokenFile === undefined ? undefined : parseAdminToken(readFileSync(tokenFile, 'utf8'), tokenFile);
  const routeList = (routes: GatewayConfig['routes']) => routes.map((r) => ({ route: r.match, handler: r.handler }));
  const fleet = new FleetView({ now: o.now, redact: o.redact, routes: routeList(config.routes) });
  let sources: AdminSources = {
    listeners: () => [], downlink: () => ({ queued: 0, delivered: 0, queues: [] }),
    totals: () => ({ sessions: 0, dispatched: 0, rejected: 0, duplicates: 0, retried: 0 }),
  };
  const metrics = new GatewayMetrics({ agentsConnected: () => fleet.connectedCount(), downlinkQueued: () => { const d = sources.downlink(); return d.queued + d.delivered; } });
  const status = (): GatewayStatus => buildStatus({ now: o.now, fleet, ...sources });
  const server = await listenAdmin({
    hostPort, ...(token !== undefined ? { token } : {}), limits: config.admin, log: o.log,
    routes: { status, history: () => fleet.history(), metrics: () => metrics.text(), page: () => renderPage(status()) },
  });
  return {
    observer: observeAll([fleet, metrics]), port: server.port, url: server.url,
    attach: (s) => void (sources = s),
    routesChanged: (routes) => fleet.setRoutes(routeList(routes)),
    close: () => server.close(),
  };
}

/**
 * The agent's Prometheus endpoint: GET /metrics on `metrics.listen`, through prom-client, with a
 * Registry of this agent's own. Loaded (with prom-client) only when metrics.listen is set: on a Pi
 * Zero the import alone costs start-up time and memory that an agent without metrics should not pay.
 *
 * Gauges and counters are read at scrape from one AgentStatus taken for that scrape (the same
 * object `ferry status` shows), so the two never disagree; the store commit histogram is the one
 * thing observed as it happens (`observeCommit`, handed to the store as its onCommit).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { bind } from '../common/bind.js';
import type { AgentStatus } from './status.js';

export interface AgentMetrics {
  /** http://HOST:PORT/metrics, with the port bound */
  url: string;
  observeCommit(seconds: number): void;
  /** Where each scrape takes its status from; until then a scrape answers 503. */
  attach(status: () => Promise<AgentStatus>): void;
  close(): Promise<void>;
}

/** A scrape is one small request: anything slower or more is cut off. */
const limits = { connectionsMax: 16, headersTimeoutMs: 5000, requestTimeoutMs: 10_000 };
const commitBucketsS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/** Binds first (a port in use stops the agent before its store is opened), serves once attached. */
export async function startAgentMetrics(listen: { host: string; port: number }): Promise<AgentMetrics> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  let status: (() => Promise<AgentStatus>) | null = null;
  let current: AgentStatus | null = null;
  const commit = defineMetrics(registry, () => current);

  const server = createServer((req, res) => void serve(req, res));
  server.maxConnections = limits.connectionsMax;
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') return reply(res, 404, 'not found: GET /metrics\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'method not allowed: GET /metrics\n');
    if (!status) return reply(res, 503, 'agent starting\n');
    try {
      current = await status();
      const text = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType });
      res.end(req.method === 'HEAD' ? undefined : text);
    } catch (err) {
      reply(res, 500, `metrics failed: ${(err as Error).message}\n`);
    }
  }

  const host = listen.host.replace(/^\[(.*)\]$/, '$1');
  await bind(server, `${listen.host}:${listen.port}`, 'metrics.listen');
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics`,
    observeCommit: (s) => commit.observe(s),
    attach: (fn) => { status = fn; },
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

function reply(res: ServerResponse, code: number, text: string): void {
  res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(text);
}

/** The agent's metrics (docs/operations.md, "Agent metrics"); returns the commit histogram. */
function defineMetrics(registry: Registry, now: () => AgentStatus | null): Histogram {
  const registers = [registry];
  const gauge = (name: string, help: string, value: (s: AgentStatus) => number): void => {
    new Gauge({ name, help, registers, collect() {
      const s = now();
      if (s) this.set(value(s));
    } });
  };
  /** A counter the agent keeps itself (since start): set to it at each scrape. */
  const counter = (name: string, help: string, value: (s: AgentStatus) => number): void => {
    new Counter({ name, help, registers, collect() {
      const s = now();
      this.reset();
      if (s) this.inc(value(s));
    } });
  };
  const labelled = (name: string, help: string, label: string, value: (s: AgentStatus) => Record<string, number>): void => {
    new Counter({ name, help, labelNames: [label], registers, collect() {
      const s = now();
      this.reset();
      if (s) for (const [k, n] of Object.entries(value(s))) this.inc({ [label]: k }, n);
    } });
  };
  gauge('ferry_agent_backlog_packets', 'Packets stored and neither acked nor dropped', (s) => s.backlog.packets);
  gauge('ferry_agent_backlog_bytes', 'Bytes of the store segments that hold backlog packets (an upper bound)', (s) => s.backlog.bytes);
  gauge('ferry_agent_oldest_packet_age_seconds', 'Age of the oldest backlog packet; 0 with no backlog', (s) => (s.backlog.oldestAgeMs ?? 0) / 1000);
  gauge('ferry_agent_in_flight_packets', 'Packets sent and not yet acked', (s) => s.inflight);
  gauge('ferry_agent_retrying_packets', 'Packets the gateway refused for now, waiting to be sent again', (s) => s.retrying);
  gauge('ferry_agent_dead_letters', 'Packets the gateway rejected for good, kept as dead letters', (s) => s.deadLetters);
  gauge('ferry_agent_store_used_bytes', 'Bytes the store files take', (s) => s.store.usedBytes);
  gauge('ferry_agent_store_capacity_bytes', 'The store capacity (store.bytesMax or the profile)', (s) => s.store.capacityBytes);
  gauge('ferry_agent_link_up', '1 while a session with the gateway is open', (s) => (s.link.up ? 1 : 0));
  gauge('ferry_agent_rtt_seconds', 'Round trip of the last PING to the gateway; NaN before one was answered', (s) => (s.link.rttMs === null ? Number.NaN : s.link.rttMs / 1000));
  counter('ferry_agent_stored_total', 'Packets stored durably since start', (s) => s.totals.stored);
  counter('ferry_agent_acked_total', 'Packets acked by the gateway since start', (s) => s.totals.acked);
  counter('ferry_agent_reconnects_total', 'Sessions opened after the first since start', (s) => Math.max(0, s.link.connects - 1));
  labelled('ferry_agent_nacked_total', 'NACKs from the gateway since start, by code', 'code', (s) => s.nacked);
  labelled('ferry_agent_dropped_total', 'Packets that left the store unsent since start, by reason', 'reason', (s) => ({ ...s.drops }));
  return new Histogram({ name: 'ferry_agent_store_commit_seconds', help: 'Time of each store commit: a group of records written and synced', buckets: commitBucketsS, registers });
}

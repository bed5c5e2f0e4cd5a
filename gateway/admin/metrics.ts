/**
 * The gateway's Prometheus metrics (prom-client), in a Registry of its own: several gateways in
 * one process (tests) do not share counters. Names follow Prometheus rules: `ferry_gateway_`
 * prefix, base units (seconds), `_total` on counters. docs/operations.md lists them.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { GatewayObserver, PingBacklog, TransportKind } from './observer.js';

/** Buckets for a handler's latency and for one fsync'd commit: 0.5 ms to 10 s. */
const secondsBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface GatewayMetricsSources {
  agentsConnected(): number;
  /** downlink messages queued and not yet acked (queued + in flight) */
  downlinkQueued(): number;
}

export class GatewayMetrics implements GatewayObserver {
  readonly registry = new Registry();
  private readonly dispatched: Counter<'route'>;
  private readonly failures: Counter<'route' | 'code'>;
  private readonly sessions: Counter;
  private readonly latency: Histogram<'route'>;
  private readonly commit: Histogram;

  constructor(sources: GatewayMetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.dispatched = new Counter({ name: 'ferry_gateway_dispatched_total', help: 'Packets a route\'s handler took', labelNames: ['route'], registers });
    this.failures = new Counter({ name: 'ferry_gateway_dispatch_failures_total', help: 'Handler failures by route and error code (retryable or not)', labelNames: ['route', 'code'], registers });
    this.sessions = new Counter({ name: 'ferry_gateway_sessions_total', help: 'Agent sessions opened since start (after HELLO and authentication)', registers });
    this.latency = new Histogram({ name: 'ferry_gateway_dispatch_latency_seconds', help: 'Time a handler took per packet, by route', labelNames: ['route'], buckets: secondsBuckets, registers });
    this.commit = new Histogram({ name: 'ferry_gateway_log_commit_seconds', help: 'Time one group commit of the dispatch log took (a durable write)', buckets: secondsBuckets, registers });
    new Gauge({ name: 'ferry_gateway_agents_connected', help: 'Agents with a session now', registers, collect() { this.set(sources.agentsConnected()); } });
    new Gauge({ name: 'ferry_gateway_downlink_queued_messages', help: 'Downlink messages waiting for their agent\'s verdict (queued or in flight)', registers, collect() { this.set(sources.downlinkQueued()); } });
  }

  sessionOpened(_s: { agent: string; session: string; transport: TransportKind; address: string | undefined }): void {
    this.sessions.inc();
  }

  sessionClosed(): void {}
  packetsReceived(): void {}
  pinged(_agent: string, _backlog: PingBacklog): void {}

  handled(route: string, seconds: number, v: { ok: true } | { ok: false; code: string }): void {
    this.latency.observe({ route }, seconds);
    if (v.ok) this.dispatched.inc({ route });
    else this.failures.inc({ route, code: v.code });
  }

  commitTimer(): () => void {
    const end = this.commit.startTimer();
    return () => void end();
  }

  /** The text exposition format, and its content type. */
  async text(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}

/**
 * The simulated application of the downlink (issue 12): it queues messages for random agents at
 * random times, some with a short ttl, sometimes a burst that fills a queue, by calling the
 * gateway's queue (`enqueue`) directly: the HTTP API is a thin layer around it, and what the
 * simulator tests is the queue and the protocol. The oracle records each message it queued, and
 * counts as owed only those whose enqueue resolved with an id. In the liveness phase it stops,
 * then queues one probe per agent that must be acked: a downlink that wedged takes none.
 */
import type { DownlinkQueues } from '../../gateway/downlink/queue.js';
import { hostileAgentId } from './checkers.js';
import type { WorldContext } from './context.js';
import { downTargets } from './downlink-device.js';
import type { DownOracle, DownRecord } from './downlink-oracle.js';
import type { GatewayHost } from './gateway-host.js';
import type { Rng } from './rng.js';

export interface AppOptions {
  /** a message every this many ms at most */
  everyMsMax: number;
  /** chance that a message has a ttl */
  ttlP: number;
}

export class SimApplication {
  private stopped = false;
  private readonly probes = new Map<string, DownRecord | null>();

  constructor(
    private readonly w: WorldContext & { dl: DownOracle },
    private readonly rng: Rng,
    private readonly gateway: GatewayHost,
    /** the honest agents' IDs (the devices of the world) */
    readonly agents: readonly string[],
    private readonly o: AppOptions,
  ) {}

  private get queues(): DownlinkQueues | undefined {
    return this.gateway.state === 'running' ? this.gateway.core?.downlink : undefined;
  }

  start(): void {
    const tick = (): void => {
      if (this.stopped) return;
      // Now and then one for the hostile agent's ID too: its session gets DOWN frames of its own.
      const agent = this.rng.chance(0.05) ? hostileAgentId : this.rng.pick(this.agents);
      this.enqueue(agent);
      this.w.later(this.rng.int(1, this.o.everyMsMax), tick, 'app');
    };
    this.w.later(this.rng.int(1, this.o.everyMsMax), tick, 'app');
  }

  /** A burst (fault `downlink-burst`): `count` messages for `agent` at once. */
  burst(agent: string, count: number): void {
    this.w.trace.event('fault', `the application queues ${count} messages for ${agent} at once`);
    for (let i = 0; i < count; i++) this.enqueue(agent);
  }

  /** The liveness phase: no more messages but one probe per agent, queued again until the gateway takes it. */
  stop(): void {
    this.stopped = true;
    for (const agent of this.agents) {
      this.probes.set(agent, null);
      const tryProbe = (): void => {
        const rec = this.enqueue(agent, true);
        void rec.then((r) => {
          if (r.state === 'queued') this.probes.set(agent, r);
          else this.w.later(1000, tryProbe);
        });
      };
      this.w.later(500, tryProbe);
    }
  }

  /** Every probe acked at the gateway. */
  probesAcked(): boolean {
    const q = this.queues;
    if (!q || this.probes.size < this.agents.length) return false;
    for (const [agent, rec] of this.probes) if (!rec || q.get(agent, rec.id!)?.state !== 'acked') return false;
    return true;
  }

  describeProbes(): string {
    const q = this.queues;
    return [...this.probes].map(([agent, rec]) => `${agent} probe ${rec ? `${rec.name} ${q?.get(agent, rec.id!)?.state ?? 'unknown'}` : 'not queued'}`).join(', ');
  }

  private enqueue(agent: string, probe = false): Promise<DownRecord> {
    const { w, rng } = this;
    const rec = w.dl.enqueue(agent, probe);
    const q = this.queues;
    if (!q) {
      w.dl.refused(rec, 'NO_GATEWAY');
      return Promise.resolve(rec);
    }
    const target = probe ? downTargets[0] : rng.pick(downTargets);
    // Mostly small; now and then over some agents' dataBytesMax (DOWNLINK_INVALID) or a byte window.
    const pad = 'p'.repeat(!probe && rng.chance(0.05) ? rng.int(2000, 12_000) : rng.int(0, 200));
    const ttlMs = !probe && rng.chance(this.o.ttlP) ? rng.pick([20, 100, 300, 1000, 5000]) : undefined;
    w.trace.event('app', `queue ${rec.name} for ${agent} ${target}${ttlMs !== undefined ? ` ttl ${ttlMs}` : ''}`);
    return q.enqueue(agent, { target, data: { m: rec.name, n: rec.n, pad }, ...(ttlMs !== undefined ? { ttlMs } : {}), from: 'sim-app' }).then(
      (r) => {
        if (r.ok) {
          w.trace.event('app', `queued ${rec.name} as ${r.id}`);
          try {
            w.dl.enqueued(rec, r.id, q.get(agent, r.id)?.expiresAt);
          } catch (err) {
            w.fail(err);
          }
        } else {
          w.trace.event('app', `refused ${rec.name}: ${r.code}`);
          w.dl.refused(rec, r.code);
        }
        return rec;
      },
      (err: unknown) => {
        const code = (err as { code?: string }).code ?? 'ERROR';
        w.trace.event('app', `failed ${rec.name}: ${code}`);
        w.dl.refused(rec, code);
        return rec;
      },
    );
  }
}

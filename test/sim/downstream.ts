/**
 * A simulated at-least-once backend (an MQTT broker, a webhook): it outlives gateway restarts and
 * keeps its own record of what it applied. It answers after a latency, sometimes slowly, and fails
 * (retryably) during outages. A gateway that dies with calls in flight leaves them applied or
 * not at random: the request may have reached the backend while the answer was lost.
 */
import type { Clock } from '../../common/clock.js';
import { ErrorCode } from '../../protocol/errors.js';
import type { DispatchPacket, Handler, HandlerResult } from '../../gateway/handlers/handler.js';
import type { CallOrder } from './checkers.js';
import type { Oracle } from './oracle.js';
import type { Rng } from './rng.js';
import type { Trace } from './trace.js';

export interface DownstreamMode {
  /** each call fails with this probability */
  failP: number;
  /** answer latency bounds */
  latencyMsMin: number;
  latencyMsMax: number;
}

export const calmDownstream: DownstreamMode = { failP: 0, latencyMsMin: 1, latencyMsMax: 20 };

interface Call {
  p: DispatchPacket;
  n: number;
  resolve: (r: HandlerResult) => void;
}

export class SimDownstream {
  mode: DownstreamMode = { ...calmDownstream };
  private readonly inflight = new Set<Call>();

  constructor(private readonly rng: Rng, private readonly oracle: Oracle, private readonly order: CallOrder, private readonly trace: Trace, private readonly fail: (err: unknown) => void) {}

  /** Runs a check; a broken guarantee stops the run (thrown here it would look like a handler failure to the gateway). */
  private check(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fail(err);
    }
  }

  /** The gateway process's handler for this backend; calls answer on that process's clock. */
  handler(name: string, inflightMax: number, clock: Clock): Handler {
    return {
      kind: `sim:${name}`,
      inflightMax,
      handle: (p) => this.call(p, clock),
      close: async () => undefined,
    };
  }

  private call(p: DispatchPacket, clock: Clock): Promise<HandlerResult> {
    const id = (p.data as { id: string }).id;
    const n = Number(id.slice(id.lastIndexOf('-') + 1));
    this.trace.event('down', `call ${id} seq ${p.seq} ${p.target}`);
    this.check(() => this.order.call(p.agent, p.target, n));
    return new Promise((resolve) => {
      const c: Call = { p, n, resolve };
      this.inflight.add(c);
      const { failP, latencyMsMin, latencyMsMax } = this.mode;
      const fail = this.rng.chance(failP);
      clock.setTimeout(() => {
        if (!this.inflight.delete(c)) return;
        if (fail) {
          const retryAfterMs = this.rng.pick([20, 100, 300, 1500]);
          this.trace.event('down', `fail ${id} retry ${retryAfterMs}`);
          this.check(() => this.order.settled(p.agent, p.target, n, 'failed'));
          resolve({ ok: false, retryable: true, code: ErrorCode.HANDLER_FAILED, message: 'simulated backend outage', retryAfterMs });
          return;
        }
        this.apply(c);
        this.check(() => this.order.settled(p.agent, p.target, n, 'ok'));
        resolve({ ok: true });
      }, this.rng.int(latencyMsMin, latencyMsMax));
    });
  }

  private apply(c: Call): void {
    const id = (c.p.data as { id: string }).id;
    this.trace.event('down', `applied ${id}`);
    this.oracle.downstream.push({ id, agent: c.p.agent, seq: c.p.seq, target: c.p.target });
  }

  /** The gateway died: its calls in flight never answer; each was applied or not. */
  gatewayDied(): void {
    for (const c of [...this.inflight]) {
      this.inflight.delete(c);
      if (this.rng.chance(0.5)) {
        this.apply(c);
        this.check(() => this.order.settled(c.p.agent, c.p.target, c.n, 'ok'));
      } else {
        this.check(() => this.order.settled(c.p.agent, c.p.target, c.n, 'lost'));
      }
    }
  }
}

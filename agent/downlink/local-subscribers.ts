/**
 * The `local` downlink consumer: programs on the device subscribe on the agent's local socket
 * (agent/local-api.ts, `{"op":"subscribe","target":PATTERN}`) and each message goes to ONE
 * subscriber whose pattern matches its target: the oldest such subscription. The subscriber
 * answers `ack` (accepted) or `refuse` with a reason (DOWNLINK_REFUSED). No matching subscriber:
 * DOWNLINK_NO_CONSUMER at once. No answer within the route's timeoutMs: DOWNLINK_TIMEOUT (a late
 * answer is refused as unknown). The subscriber's connection ends before it answered: the next
 * matching subscriber gets the message (within the same time-out), else DOWNLINK_NO_CONSUMER; so
 * a subscriber should ack only once it has taken the message, and a message it took without
 * acking before it went away may reach another one too.
 *
 * One LocalSubscribers serves every `local` route (each with its own time-out) and the local API.
 */
import type { Clock } from '../../common/clock.js';
import type { Log } from '../../common/log.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { dataToJson } from '../../protocol/packet.js';
import { compilePattern, type Matcher } from '../../protocol/pattern.js';
import type { DownlinkConsumer, DownlinkMessage, Verdict } from './consumer.js';

/** A subscriber's connection, as the local API gives it. */
export interface SubscriberConn {
  /** queues one pushed line for the client; false when the connection is gone */
  push(line: object): boolean;
}

interface Subscription {
  conn: SubscriberConn;
  pattern: string;
  matches: Matcher;
}

/** A message handed to a connection and not answered yet. */
interface Awaiting {
  conn: SubscriberConn;
  id: string;
  answer(v: Verdict): void;
  gone(): void;
}

export interface LocalSubscribersStats {
  subscriptions: number;
  /** messages pushed to a subscriber and not answered yet */
  awaiting: number;
}

export const subscriptionsPerConnMax = 64;
export const refuseReasonCharsMax = 1000;

export class LocalSubscribers {
  /** oldest first */
  private subscriptions: Subscription[] = [];
  private readonly awaiting = new Set<Awaiting>();

  constructor(private readonly deps: { clock: Clock; log: Log }) {}

  /** Adds a subscription; LOCAL_REQUEST_INVALID for a bad pattern or too many on one connection. */
  subscribe(conn: SubscriberConn, pattern: unknown): void {
    if (typeof pattern !== 'string' || pattern.length === 0) throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, 'subscribe needs "target": a target pattern (e.g. "cmd/#")');
    let matches: Matcher;
    try {
      matches = compilePattern(pattern);
    } catch (err) {
      throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, `invalid target pattern: ${(err as Error).message}`);
    }
    if (this.subscriptions.filter((s) => s.conn === conn).length >= subscriptionsPerConnMax) {
      throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, `at most ${subscriptionsPerConnMax} subscriptions per connection`);
    }
    this.subscriptions.push({ conn, pattern, matches });
  }

  /** The subscriber's answer to message `id`; LOCAL_REQUEST_INVALID when no such message awaits its answer. */
  answer(conn: SubscriberConn, id: unknown, verdict: Verdict): void {
    if (typeof id !== 'string') throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, 'needs "id": the ID of the message answered');
    for (const a of this.awaiting) {
      if (a.conn === conn && a.id === id) {
        a.answer(verdict);
        return;
      }
    }
    throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, `message ${JSON.stringify(id.slice(0, 100))} awaits no answer from this connection (answered already, timed out, or never sent to it)`);
  }

  /** The connection ended: its subscriptions go, and what it was handed goes to the next subscriber. */
  disconnected(conn: SubscriberConn): void {
    this.subscriptions = this.subscriptions.filter((s) => s.conn !== conn);
    for (const a of [...this.awaiting]) if (a.conn === conn) a.gone();
  }

  stats(): LocalSubscribersStats {
    return { subscriptions: this.subscriptions.length, awaiting: this.awaiting.size };
  }

  /** The consumer of one `local` route. */
  consumer(timeoutMs: number): DownlinkConsumer {
    return { deliver: (m) => this.deliver(m, timeoutMs) };
  }

  private deliver(m: DownlinkMessage, timeoutMs: number): Promise<Verdict> {
    const { clock } = this.deps;
    const line = { message: { id: m.id, target: m.target, data: dataToJson(m.data), ts: m.ts } };
    const tried = new Set<SubscriberConn>();
    return new Promise((resolve) => {
      let current: Awaiting | null = null;
      let done = false;
      const finish = (v: Verdict): void => {
        if (done) return;
        done = true;
        clock.clearTimeout(timer);
        if (current) this.awaiting.delete(current);
        resolve(v);
      };
      const next = (): void => {
        if (current) this.awaiting.delete(current);
        current = null;
        for (;;) {
          const sub = this.subscriptions.find((s) => !tried.has(s.conn) && s.matches(m.target));
          if (!sub) {
            const why = tried.size === 0 ? `no local subscriber for target ${m.target}` : `the local subscribers for target ${m.target} went away before they answered`;
            finish({ ok: false, code: ErrorCode.DOWNLINK_NO_CONSUMER, reason: why });
            return;
          }
          tried.add(sub.conn);
          const a: Awaiting = { conn: sub.conn, id: m.id, answer: finish, gone: next };
          // Awaiting before the push: an answer can only follow it, but the bookkeeping is then in place.
          this.awaiting.add(a);
          current = a;
          if (sub.conn.push(line)) return;
          this.awaiting.delete(a);
          current = null;
        }
      };
      const timer = clock.setTimeout(() => finish({ ok: false, code: ErrorCode.DOWNLINK_TIMEOUT, reason: `no local subscriber answered within ${timeoutMs} ms` }), timeoutMs);
      next();
    });
  }
}

/**
 * Logs a failure that repeats (a broker that is down, a serial device that is missing, a refused
 * dial, a storm of refused connections) in a number of lines bounded by time, not by the
 * attempts: one line per attempt would say nothing new and bury the first line, the one that
 * says why.
 *
 * Events are keyed by cause: a scope (a route, the link, a serial path) and a code. The first
 * event of a cause is logged whole (its fields carry the reason). Those after it are counted, and
 * at most one `… (summary)` line per `summaryIntervalMs` gives the count since the last line, the
 * total, how long the cause has lasted, and the packets affected. A cause ends either when its
 * owner says it cleared (`clear(scope)`: one `… (cleared)` line at info with the totals) or, with
 * `endWhenQuiet`, after an interval with no event (one `… (stopped)` line, when a summary was
 * written). The next event of the cause is then logged whole again.
 */
import type { Clock } from './clock.js';
import type { Log, LogFields } from './log.js';

export interface StuckLogOptions {
  log: Log;
  /** the summaries' timer; real timers must not keep the process alive (common/clock.ts) */
  clock: Clock;
  /** at most one summary line per cause per this long */
  summaryIntervalMs: number;
  /**
   * A cause ends by itself after an interval without events (for storms that have no "cleared"
   * moment, such as refused connections); otherwise it lasts until `clear`.
   */
  endWhenQuiet?: boolean;
  /** distinct values a summary line lists per sample field (default 5) */
  samplesMax?: number;
  /** distinct packets counted per cause; beyond, `packetsTotal` is a lower bound (default 100000) */
  packetsMax?: number;
}

export type StuckLevel = 'info' | 'warn';

export interface StuckEvent {
  /** the first line's message; summaries and the end line add a suffix to it */
  msg: string;
  /** default warn */
  level?: StuckLevel;
  /** fields of the first line (the reason: `error`, `url`, …) */
  fields?: LogFields;
  /** which packet this attempt was for (e.g. `agent/seq`): summaries count distinct ones */
  packet?: string;
  /** values sampled for the summary line, under these names (e.g. `sampleAddresses`) */
  samples?: Record<string, unknown>;
}

/** Default summary interval of stuck causes (config `log.stuckSummaryIntervalMs`). */
export const stuckSummaryIntervalMsDefault = 30_000;

interface Cause {
  scope: string;
  level: StuckLevel;
  msg: string;
  code: string;
  startMs: number;
  lastLineMs: number;
  /** events since the last line */
  count: number;
  /** events since the first, the first included */
  total: number;
  summaries: number;
  packets: Set<string>;
  packetsNew: Set<string>;
  samples: Map<string, Set<string>>;
  timer: unknown;
}

export class StuckLog {
  private readonly causes = new Map<string, Cause>();
  private readonly samplesMax: number;
  private readonly packetsMax: number;
  private closed = false;

  constructor(private readonly o: StuckLogOptions) {
    this.samplesMax = o.samplesMax ?? 5;
    this.packetsMax = o.packetsMax ?? 100_000;
  }

  /** One failed attempt of cause (scope, code). */
  fail(scope: string, code: string, e: StuckEvent): void {
    const key = `${scope}\u0000${code}`;
    const c = this.causes.get(key);
    if (c && !this.closed) {
      c.count++;
      c.total++;
      this.notePacket(c, e.packet);
      for (const [name, value] of Object.entries(e.samples ?? {})) sample(c.samples, name, value, this.samplesMax);
      if (c.timer === null) this.arm(key, c, c.lastLineMs + this.o.summaryIntervalMs);
      return;
    }
    const level = e.level ?? 'warn';
    this.o.log[level](e.msg, { code, ...e.fields });
    if (this.closed) return;
    const now = this.o.clock.now();
    const cause: Cause = {
      scope, level, msg: e.msg, code, startMs: now, lastLineMs: now, count: 0, total: 1, summaries: 0,
      packets: new Set(), packetsNew: new Set(), samples: new Map(), timer: null,
    };
    this.notePacket(cause, e.packet);
    cause.packetsNew.clear();
    this.causes.set(key, cause);
    // Quiet causes need the timer to notice the quiet; the others arm it with their second event.
    if (this.o.endWhenQuiet) this.arm(key, cause, now + this.o.summaryIntervalMs);
  }

  /** Whether any cause of `scope` is open. */
  isStuck(scope: string): boolean {
    for (const c of this.causes.values()) if (c.scope === scope) return true;
    return false;
  }

  /** Every cause of `scope` is over (the route delivered, the device opened): one line each at info. */
  clear(scope: string, fields: LogFields = {}): void {
    for (const [key, c] of this.causes) {
      if (c.scope !== scope) continue;
      this.o.clock.clearTimeout(c.timer);
      this.causes.delete(key);
      this.o.log.info(`${c.msg} (cleared)`, { code: c.code, total: c.total, ...this.packetCounts(c), forMs: this.o.clock.now() - c.startMs, summary: true, ...fields });
    }
  }

  /** Logs what is counted and not yet said, and stops the timers; later events are logged one line each. */
  close(): void {
    this.closed = true;
    for (const c of this.causes.values()) {
      this.o.clock.clearTimeout(c.timer);
      if (c.count > 0) this.summarise(c);
    }
    this.causes.clear();
  }

  private arm(key: string, c: Cause, atMs: number): void {
    c.timer = this.o.clock.setTimeout(() => this.tick(key, c), Math.max(0, atMs - this.o.clock.now()));
  }

  private tick(key: string, c: Cause): void {
    c.timer = null;
    if (this.causes.get(key) !== c) return;
    if (c.count > 0) {
      this.summarise(c);
      if (this.o.endWhenQuiet) this.arm(key, c, c.lastLineMs + this.o.summaryIntervalMs);
      return;
    }
    if (!this.o.endWhenQuiet) return;
    this.causes.delete(key);
    if (c.summaries > 0) {
      this.o.log[c.level](`${c.msg} (stopped)`, { code: c.code, total: c.total, sinceMs: this.o.clock.now() - c.startMs, summary: true });
    }
  }

  private summarise(c: Cause): void {
    const samples: LogFields = {};
    for (const [name, set] of c.samples) if (set.size > 0) samples[name] = [...set];
    this.o.log[c.level](`${c.msg} (summary)`, {
      code: c.code, count: c.count, intervalMs: this.o.summaryIntervalMs, total: c.total,
      ...(c.packets.size > 0 ? { packets: c.packetsNew.size, ...this.packetCounts(c) } : {}),
      forMs: this.o.clock.now() - c.startMs, summary: true, ...samples,
    });
    c.summaries++;
    c.count = 0;
    c.lastLineMs = this.o.clock.now();
    c.packetsNew.clear();
    c.samples.clear();
  }

  private notePacket(c: Cause, packet: string | undefined): void {
    if (packet === undefined) return;
    if (c.packets.size < this.packetsMax) c.packets.add(packet);
    if (c.packetsNew.size < this.packetsMax) c.packetsNew.add(packet);
  }

  private packetCounts(c: Cause): LogFields {
    return c.packets.size > 0 ? { packetsTotal: c.packets.size } : {};
  }
}

function sample(samples: Map<string, Set<string>>, name: string, value: unknown, max: number): void {
  if (typeof value !== 'string') return;
  let set = samples.get(name);
  if (!set) samples.set(name, (set = new Set()));
  if (set.size < max) set.add(value);
}

/**
 * Logs a storm of like events (refused connections, failed HELLOs, ended sessions) in a number of
 * lines bounded by time, not by the events: anyone who can open a connection can cause them, so
 * a line per event would let a stranger fill the disk (6 MB in 10 s was measured).
 *
 * Per kind (message + code): the first event is logged whole. Those after it are counted, and at
 * most one summary line per `intervalMs` says how many, with a few sample addresses and agent IDs.
 * An interval with none after a summary ends the storm with a line saying so and the total; the
 * next event of the kind is logged whole again. A lone event costs one line, as before.
 */
import type { Clock } from '../common/clock.js';
import type { Log, LogFields } from '../common/log.js';

export interface LogSummaryOptions {
  log: Log;
  /** the summaries' timer; real timers must not keep the process alive (common/clock.ts) */
  clock: Clock;
  /** at most one summary line per kind per this long */
  intervalMs: number;
  /** distinct addresses and agent IDs a summary line names, each (default 5) */
  samplesMax?: number;
}

type Level = 'info' | 'warn';

interface Kind {
  level: Level;
  msg: string;
  code: string;
  firstAtMs: number;
  /** events since the last line */
  count: number;
  /** events since the first, the first included */
  total: number;
  summaries: number;
  addresses: Set<string>;
  agents: Set<string>;
  timer: unknown;
}

/** Default summary interval (config `log.summaryIntervalMs`). */
export const logSummaryIntervalMsDefault = 10_000;

export class LogSummary {
  private readonly kinds = new Map<string, Kind>();
  private readonly samplesMax: number;
  private closed = false;

  constructor(private readonly o: LogSummaryOptions) {
    this.samplesMax = o.samplesMax ?? 5;
  }

  /**
   * One event of kind (msg, code). `fields` go into the line when it is the first of its kind;
   * their `address` and `agent` (strings) are sampled for the summary otherwise.
   */
  note(level: Level, msg: string, code: string, fields: LogFields = {}): void {
    const key = `${msg}\u0000${code}`;
    const k = this.kinds.get(key);
    if (k && !this.closed) {
      k.count++;
      k.total++;
      sample(k.addresses, fields.address, this.samplesMax);
      sample(k.agents, fields.agent, this.samplesMax);
      return;
    }
    this.o.log[level](msg, { code, ...fields });
    if (this.closed) return;
    const kind: Kind = {
      level, msg, code, firstAtMs: this.o.clock.now(), count: 0, total: 1, summaries: 0,
      addresses: new Set(), agents: new Set(), timer: null,
    };
    this.kinds.set(key, kind);
    this.arm(key, kind);
  }

  /** Logs what is counted and not yet said, and stops the timers; later events are logged one line each. */
  close(): void {
    this.closed = true;
    for (const k of this.kinds.values()) {
      this.o.clock.clearTimeout(k.timer);
      if (k.count > 0) this.summarise(k);
    }
    this.kinds.clear();
  }

  private arm(key: string, k: Kind): void {
    k.timer = this.o.clock.setTimeout(() => this.tick(key, k), this.o.intervalMs);
  }

  private tick(key: string, k: Kind): void {
    if (this.kinds.get(key) !== k) return;
    if (k.count > 0) {
      this.summarise(k);
      this.arm(key, k);
      return;
    }
    this.kinds.delete(key);
    if (k.summaries > 0) {
      this.o.log[k.level](`${k.msg} (stopped)`, { code: k.code, total: k.total, sinceMs: this.o.clock.now() - k.firstAtMs, summary: true });
    }
  }

  private summarise(k: Kind): void {
    this.o.log[k.level](`${k.msg} (summary)`, {
      code: k.code, count: k.count, intervalMs: this.o.intervalMs, total: k.total, summary: true,
      ...(k.addresses.size > 0 ? { sampleAddresses: [...k.addresses] } : {}),
      ...(k.agents.size > 0 ? { sampleAgents: [...k.agents] } : {}),
    });
    k.summaries++;
    k.count = 0;
    k.addresses.clear();
    k.agents.clear();
  }
}

function sample(set: Set<string>, value: unknown, max: number): void {
  if (typeof value === 'string' && set.size < max) set.add(value);
}

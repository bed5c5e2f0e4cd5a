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
import { StuckLog } from '../common/stuck-log.js';

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

/** Default summary interval (config `log.summaryIntervalMs`). */
export const logSummaryIntervalMsDefault = 10_000;

/** A storm is a stuck cause (common/stuck-log.ts) keyed by message and code that ends when quiet. */
export class LogSummary {
  private readonly stuck: StuckLog;

  constructor(o: LogSummaryOptions) {
    this.stuck = new StuckLog({
      log: o.log, clock: o.clock, summaryIntervalMs: o.intervalMs, endWhenQuiet: true,
      ...(o.samplesMax !== undefined ? { samplesMax: o.samplesMax } : {}),
    });
  }

  /**
   * One event of kind (msg, code). `fields` go into the line when it is the first of its kind;
   * their `address` and `agent` (strings) are sampled for the summary otherwise.
   */
  note(level: Level, msg: string, code: string, fields: LogFields = {}): void {
    this.stuck.fail(msg, code, { msg, level, fields, samples: { sampleAddresses: fields.address, sampleAgents: fields.agent } });
  }

  /** Logs what is counted and not yet said, and stops the timers; later events are logged one line each. */
  close(): void {
    this.stuck.close();
  }
}

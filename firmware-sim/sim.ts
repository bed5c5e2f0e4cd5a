import type { SimConfig } from './config.js';
import { sample } from './waveform.js';

/** A monotonic clock in ms (never goes back). */
export interface SimClock {
  now(): number;
}

/** Repeating timers. `clearInterval` with a handle already cleared must do nothing. */
export interface SimTimers {
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

/**
 * Everything the sim touches outside itself. `write` receives one whole reading line at a time
 * (ending in `\n`); it must not throw (a sink that cannot keep up drops and counts, see main.ts).
 */
export interface SimIo {
  clock: SimClock;
  timers: SimTimers;
  /** Uniform in [0, 1). */
  rng: () => number;
  write: (line: string) => void;
  log?: (line: string) => void;
}

export type SimSettings = Pick<SimConfig, 'rateHz' | 'key' | 'waveform' | 'decimals'> & { threshold?: number | undefined };

/** Readings are emitted in batches on a timer no faster than this. */
export const TICK_MS_MIN = 10;
/** A command line longer than this is discarded (input from the serial line is untrusted). */
export const COMMAND_BYTES_MAX = 256;
export const RATE_HZ_MAX = 10_000;
/** The longest `interval=MS`: a day. */
export const INTERVAL_MS_MAX = 86_400_000;

/**
 * The simulated microcontroller: emits `key=value\n` readings at `rateHz`, each the waveform
 * sampled at its scheduled time, and obeys commands sent back on the serial line.
 *
 * Reading n (from the last rate change) is due at `anchor + n·1000/rateHz`; each tick emits the
 * readings that are due, so the rate holds at any tick granularity. When the process stalls for
 * longer than a second the backlog is not replayed: those readings are counted in `skipped`.
 *
 * Commands, one per line (`\r\n` or `\n`), each answered on a line of its own:
 * - `interval=MS` sets the time between readings (ms, 1000/RATE_HZ_MAX to INTERVAL_MS_MAX):
 *   `ok interval=MS`;
 * - `rate=HZ` sets readings per second: `ok rate=HZ`;
 * - `threshold=VALUE` sets the alarm threshold: from then on each reading carries `alarm=1` while
 *   its value is above VALUE and `alarm=0` otherwise; `threshold=off` removes it: `ok threshold=...`;
 * - anything else: `err unknown command: TEXT`; a value out of range or not a number:
 *   `err bad value: ...`; a line over COMMAND_BYTES_MAX: `err command too long: ...`.
 * Rejected commands change nothing and are counted in `commandsIgnored`. Empty lines are skipped.
 */
export class FirmwareSim {
  #io: SimIo;
  #settings: SimSettings;
  #timer: unknown = undefined;
  #startMs = 0;
  #anchorMs = 0;
  #anchorCount = 0;
  #readings = 0;
  #skipped = 0;
  #commandsIgnored = 0;
  #inbox = '';
  #inboxOverflow = false;

  constructor(settings: SimSettings, io: SimIo) {
    this.#settings = { ...settings };
    this.#io = io;
  }

  /** Readings emitted so far. */
  get readings(): number {
    return this.#readings;
  }
  /** Readings not emitted because the process fell more than a second behind. */
  get skipped(): number {
    return this.#skipped;
  }
  get commandsIgnored(): number {
    return this.#commandsIgnored;
  }
  get rateHz(): number {
    return this.#settings.rateHz;
  }
  /** The alarm threshold, or undefined when none is set. */
  get threshold(): number | undefined {
    return this.#settings.threshold;
  }
  get running(): boolean {
    return this.#timer !== undefined;
  }

  start(): void {
    if (this.running) return;
    this.#startMs = this.#io.clock.now();
    this.#anchorMs = this.#startMs;
    this.#anchorCount = this.#readings;
    this.#arm();
    this.tick();
  }

  stop(): void {
    if (!this.running) return;
    this.#io.timers.clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Changes the rate from now on; throws RangeError outside (0, RATE_HZ_MAX]. */
  setRate(rateHz: number): void {
    if (!Number.isFinite(rateHz) || rateHz <= 0 || rateHz > RATE_HZ_MAX) {
      throw new RangeError(`rate must be in (0, ${RATE_HZ_MAX}] Hz, got ${rateHz}`);
    }
    this.#settings.rateHz = rateHz;
    if (!this.running) return;
    this.#anchorMs = this.#io.clock.now();
    this.#anchorCount = this.#readings;
    this.#io.timers.clearInterval(this.#timer);
    this.#arm();
  }

  /** Emits every reading that is due now. Called by the timer; public for tests. */
  tick(): void {
    if (!this.running) return;
    const periodMs = 1000 / this.#settings.rateHz;
    const now = this.#io.clock.now();
    const due = Math.floor((now - this.#anchorMs) / periodMs) + 1 - (this.#readings - this.#anchorCount);
    const burstMax = Math.max(1, Math.ceil(this.#settings.rateHz));
    if (due > burstMax) {
      // Fell behind by more than a second: skip to the present instead of replaying the past.
      this.#skipped += due - 1;
      this.#anchorMs = now;
      this.#anchorCount = this.#readings;
    }
    for (;;) {
      const n = this.#readings - this.#anchorCount;
      const atMs = this.#anchorMs + n * periodMs;
      if (atMs > now) break;
      this.#emit(atMs - this.#startMs);
    }
  }

  /** Bytes (as text) from the serial line; whole lines are taken as commands. */
  receive(text: string): void {
    let rest = this.#inbox + text;
    let nl: number;
    while ((nl = rest.indexOf('\n')) >= 0) {
      const line = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
      if (this.#inboxOverflow) this.#inboxOverflow = false;
      else if (line.length > COMMAND_BYTES_MAX) this.#reject(`err command too long: more than ${COMMAND_BYTES_MAX} bytes`);
      else this.command(line);
    }
    if (rest.length > COMMAND_BYTES_MAX && !this.#inboxOverflow) {
      this.#inboxOverflow = true;
      this.#reject(`err command too long: more than ${COMMAND_BYTES_MAX} bytes`);
    }
    if (this.#inboxOverflow) rest = '';
    this.#inbox = rest;
  }

  /** Applies one command line and writes its answer; returns the answer (null for an empty line). */
  command(line: string): string | null {
    const text = line.trim();
    if (text === '') return null;
    const answer = this.#apply(text);
    if (answer.startsWith('ok')) {
      this.#io.write(`${answer}\n`);
      this.#io.log?.(`firmware-sim: ${answer} (now ${this.#settings.rateHz} Hz)`);
    } else {
      this.#reject(answer);
    }
    return answer;
  }

  #reject(answer: string): void {
    this.#commandsIgnored++;
    this.#io.write(`${answer}\n`);
    this.#io.log?.(`firmware-sim: ${answer}`);
  }

  /** The answer to one command (`ok ...` once applied, `err ...` when not). */
  #apply(text: string): string {
    const show = JSON.stringify(text.slice(0, 64)).slice(1, -1);
    const eq = text.indexOf('=');
    const name = eq < 0 ? text : text.slice(0, eq);
    const value = eq < 0 ? '' : text.slice(eq + 1).trim();
    const number = /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
    switch (name.trim()) {
      case 'interval': {
        const intervalMs = number;
        if (!(intervalMs >= 1000 / RATE_HZ_MAX && intervalMs <= INTERVAL_MS_MAX)) return `err bad value: ${show} (want ms from ${1000 / RATE_HZ_MAX} to ${INTERVAL_MS_MAX})`;
        this.setRate(1000 / intervalMs);
        return `ok interval=${intervalMs}`;
      }
      case 'rate': {
        const hz = number;
        if (!(hz > 0 && hz <= RATE_HZ_MAX)) return `err bad value: ${show} (want readings per second above 0, at most ${RATE_HZ_MAX})`;
        this.setRate(hz);
        return `ok rate=${hz}`;
      }
      case 'threshold': {
        if (value === 'off') {
          this.#settings.threshold = undefined;
          return 'ok threshold=off';
        }
        if (!Number.isFinite(number)) return `err bad value: ${show} (want a number, or off)`;
        this.#settings.threshold = number;
        return `ok threshold=${number}`;
      }
      default:
        return `err unknown command: ${show}`;
    }
  }

  #arm(): void {
    const tickMs = Math.max(TICK_MS_MIN, 1000 / this.#settings.rateHz);
    this.#timer = this.#io.timers.setInterval(() => this.tick(), tickMs);
  }

  #emit(tMs: number): void {
    const { key, waveform, decimals, threshold } = this.#settings;
    const value = sample(waveform, tMs, this.#io.rng);
    this.#readings++;
    const alarm = threshold === undefined ? '' : ` alarm=${value > threshold ? 1 : 0}`;
    this.#io.write(`${key}=${value.toFixed(decimals)}${alarm}\n`);
  }
}

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

export type SimSettings = Pick<SimConfig, 'rateHz' | 'key' | 'waveform' | 'decimals'>;

/** Readings are emitted in batches on a timer no faster than this. */
export const TICK_MS_MIN = 10;
/** A command line longer than this is discarded (input from the serial line is untrusted). */
export const COMMAND_BYTES_MAX = 256;
export const RATE_HZ_MAX = 10_000;

/**
 * The simulated microcontroller: emits `key=value\n` readings at `rateHz`, each the waveform
 * sampled at its scheduled time, and obeys commands sent back on the serial line.
 *
 * Reading n (from the last rate change) is due at `anchor + n·1000/rateHz`; each tick emits the
 * readings that are due, so the rate holds at any tick granularity. When the process stalls for
 * longer than a second the backlog is not replayed: those readings are counted in `skipped`.
 *
 * Commands (one per line, others ignored and counted): `rate=<hz>` sets the reading rate.
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
      else this.command(line);
    }
    if (rest.length > COMMAND_BYTES_MAX) {
      this.#inboxOverflow = true;
      this.#commandsIgnored++;
      rest = '';
    }
    this.#inbox = rest;
  }

  /** Applies one command line; returns whether it was understood. */
  command(line: string): boolean {
    const text = line.trim();
    if (text === '') return false;
    const rate = /^rate=(\d+(?:\.\d+)?)$/.exec(text);
    if (rate) {
      const hz = Number(rate[1]);
      if (hz > 0 && hz <= RATE_HZ_MAX) {
        this.setRate(hz);
        this.#io.log?.(`firmware-sim: rate set to ${hz} Hz`);
        return true;
      }
    }
    this.#commandsIgnored++;
    this.#io.log?.(`firmware-sim: ignored command ${JSON.stringify(text.slice(0, 64))}`);
    return false;
  }

  #arm(): void {
    const tickMs = Math.max(TICK_MS_MIN, 1000 / this.#settings.rateHz);
    this.#timer = this.#io.timers.setInterval(() => this.tick(), tickMs);
  }

  #emit(tMs: number): void {
    const { key, waveform, decimals } = this.#settings;
    const value = sample(waveform, tMs, this.#io.rng);
    this.#readings++;
    this.#io.write(`${key}=${value.toFixed(decimals)}\n`);
  }
}

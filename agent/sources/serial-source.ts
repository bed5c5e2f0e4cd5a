import { SerialPort } from 'serialport';
import { LineSplitter } from './line-splitter.js';
import type { Clock } from '../../common/clock.js';
import type { Log } from '../../common/log.js';
import { ErrorCode, isFerryError } from '../../protocol/errors.js';
import { lineBytesMax, parseLine, type Reading } from './line-parser.js';

export interface SerialSourceConfig {
  path: string;
  baudRate: number;
  format: 'kv' | 'json';
  reopenDelayMs: number;
}

export interface SourceStats {
  readings: number;
  invalidLines: number;
  opens: number;
  open: boolean;
}

/**
 * Reads text lines from a serial device with the serialport package. Survives the device going
 * away (unplugged, simulator restarted): it closes, waits `reopenDelayMs`, and opens it again.
 * Bad lines are counted and dropped; a line longer than the limit is cut off and dropped.
 */
export class SerialSource {
  private port: SerialPort | null = null;
  private stopped = false;
  private reopenTimer: unknown = null;
  private readonly counters = { readings: 0, invalidLines: 0, opens: 0 };
  private lastWarnMs = 0;

  constructor(
    private readonly config: SerialSourceConfig,
    private readonly deps: { clock: Clock; log: Log; onReading: (r: Reading) => void },
  ) {}

  start(): void {
    this.open();
  }

  stats(): SourceStats {
    return { ...this.counters, open: this.port?.isOpen ?? false };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.reopenTimer !== null) this.deps.clock.clearTimeout(this.reopenTimer);
    const port = this.port;
    this.port = null;
    if (port?.isOpen) await new Promise<void>((r) => port.close(() => r()));
  }

  private open(): void {
    if (this.stopped) return;
    const { log } = this.deps;
    const port = new SerialPort({ path: this.config.path, baudRate: this.config.baudRate, autoOpen: false });
    this.port = port;
    const splitter = new LineSplitter(lineBytesMax);
    port.on('data', (chunk: Buffer) => {
      const overlongBefore = splitter.overlong;
      for (const line of splitter.push(chunk)) this.onLine(line);
      if (splitter.overlong > overlongBefore) this.countInvalid(`line longer than ${lineBytesMax} bytes`);
    });
    let retried = false;
    const retry = (why: string): void => {
      if (retried || this.stopped) return;
      retried = true;
      if (this.port === port) this.port = null;
      log.warn('serial: device unavailable; will reopen', { path: this.config.path, why, delayMs: this.config.reopenDelayMs });
      this.reopenTimer = this.deps.clock.setTimeout(() => {
        this.reopenTimer = null;
        this.open();
      }, this.config.reopenDelayMs);
    };
    port.on('close', () => retry('closed'));
    port.on('error', (err: Error) => {
      if (port.isOpen) port.close(() => undefined);
      retry(err.message);
    });
    port.open((err) => {
      if (err) {
        retry(err.message);
        return;
      }
      this.counters.opens++;
      log.info('serial: device open', { path: this.config.path });
    });
  }

  private onLine(line: string): void {
    let reading: Reading;
    try {
      reading = parseLine(line, this.config.format);
    } catch (err) {
      if (!isFerryError(err)) throw err;
      this.countInvalid(err.message);
      return;
    }
    this.counters.readings++;
    this.deps.onReading(reading);
  }

  /** Counts a dropped line; logs at most one warning per 10 s so a noisy line cannot flood the log. */
  private countInvalid(reason: string): void {
    this.counters.invalidLines++;
    const nowMs = this.deps.clock.now();
    if (nowMs - this.lastWarnMs > 10_000) {
      this.lastWarnMs = nowMs;
      this.deps.log.warn('serial: dropped a bad line', { code: ErrorCode.SERIAL_LINE_INVALID, reason, invalidLines: this.counters.invalidLines });
    }
  }
}

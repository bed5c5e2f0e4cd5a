import { SerialPort } from 'serialport';
import { LineSplitter } from './line-splitter.js';
import type { Clock } from '../../common/clock.js';
import type { Log } from '../../common/log.js';
import { ErrorCode, isFerryError } from '../../protocol/errors.js';
import { lineBytesMax, parseLine, type Reading } from './line-parser.js';

export interface SerialSourceConfig {
  /** how downlink routes name it; default its path */
  name?: string;
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
  /** `ok ...`/`err ...` lines read (answers to downlink commands, never readings) */
  answers: number;
  /** why the device is not open, while waiting to reopen it; else null */
  error: string | null;
}

/** Who hears the device's answers to a command (agent/downlink/serial-consumer.ts); one at a time. */
export interface AnswerListener {
  /** a line `ok ...` or `err ...` read from the device */
  answer(line: string): void;
  /** the device closed or failed (unplugged): no answer will come on this opening */
  closed(): void;
}

/** An answer to a command, not a reading: `ok` or `err`, alone or followed by a space and more. */
export const answerLinePattern = /^(ok|err)(\s|$)/;

/**
 * Reads text lines from a serial device with the serialport package. Survives the device going
 * away (unplugged, simulator restarted): it closes, waits `reopenDelayMs`, and opens it again.
 * Bad lines are counted and dropped; a line longer than the limit is cut off and dropped.
 *
 * Downlink commands go the other way (`write`): a line `ok ...` or `err ...` from the device is
 * its answer to one, handed to the `AnswerListener` (if any) and never parsed as a reading.
 */
export class SerialSource {
  private port: SerialPort | null = null;
  private stopped = false;
  private reopenTimer: unknown = null;
  private readonly counters = { readings: 0, invalidLines: 0, opens: 0, answers: 0 };
  private listener: AnswerListener | null = null;
  private lastWarnMs = 0;
  private lastError: string | null = null;

  constructor(
    private readonly config: SerialSourceConfig,
    private readonly deps: { clock: Clock; log: Log; onReading: (r: Reading) => void },
  ) {}

  start(): void {
    this.open();
  }

  /** The name downlink routes use: `name`, else the path. */
  get name(): string {
    return this.config.name ?? this.config.path;
  }

  /** Whether the device is open now (a command can be written). */
  get isOpen(): boolean {
    return this.port?.isOpen ?? false;
  }

  /**
   * Writes `text` to the device (the caller ends it with a newline); rejects when the device is
   * not open or the write fails.
   */
  write(text: string | Buffer): Promise<void> {
    const port = this.port;
    if (!port?.isOpen) return Promise.reject(new Error(`serial device ${this.config.path} is not open`));
    return new Promise((resolve, reject) => port.write(text, (err) => (err ? reject(err) : resolve())));
  }

  /** Sets who hears answers and closes (null: nobody; answers are then counted and dropped). */
  setAnswerListener(listener: AnswerListener | null): void {
    this.listener = listener;
  }

  stats(): SourceStats {
    const open = this.port?.isOpen ?? false;
    return { ...this.counters, open, error: open ? null : this.lastError };
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
      this.lastError = why;
      if (this.port === port) this.port = null;
      log.warn('serial: device unavailable; will reopen', { path: this.config.path, why, delayMs: this.config.reopenDelayMs });
      this.reopenTimer = this.deps.clock.setTimeout(() => {
        this.reopenTimer = null;
        this.open();
      }, this.config.reopenDelayMs);
    };
    port.on('close', () => {
      this.listener?.closed();
      retry('closed');
    });
    port.on('error', (err: Error) => {
      this.listener?.closed();
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
    if (answerLinePattern.test(line)) {
      this.counters.answers++;
      this.listener?.answer(line);
      return;
    }
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

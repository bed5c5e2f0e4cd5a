/**
 * The `serial` downlink consumer: a message becomes one command line written to a serial source's
 * device, which answers `ok ...` (accepted) or `err REASON` (refused with DOWNLINK_REFUSED and
 * the reason) on a line of its own; the first such line after the write is the answer.
 *
 * The line: data that is a string is written as it is, bytes as they are, any other JSON value as
 * its JSON text; then `\n`. A line break (CR or LF) in it would make two commands, and an empty
 * line is no command: both are refused (DOWNLINK_INVALID) before anything is written.
 *
 * One command is in flight per device (every route to it shares one SerialCommands), so an
 * answer always belongs to the command written last. Not answered within the route's timeoutMs:
 * DOWNLINK_TIMEOUT; the device not open (unplugged, or between a close and its reopen), or
 * closing before it answered: DOWNLINK_NO_CONSUMER. A device that answers after the time-out is
 * not told apart from one answering the next command: its late answer is taken by that command
 * (devices that echo the command in their answer, as firmware-sim does, let a person see it).
 */
import type { Clock } from '../../common/clock.js';
import type { Log } from '../../common/log.js';
import { ErrorCode } from '../../protocol/errors.js';
import type { PacketData } from '../../protocol/packet.js';
import type { AnswerListener } from '../sources/serial-source.js';
import type { DownlinkConsumer, DownlinkMessage, Verdict } from './consumer.js';

/** What the consumer needs of a serial source (agent/sources/serial-source.ts SerialSource). */
export interface CommandDevice {
  readonly name: string;
  readonly isOpen: boolean;
  /** writes the bytes; rejects when the device is not open or the write fails */
  write(bytes: Buffer): Promise<void>;
  setAnswerListener(listener: AnswerListener | null): void;
}

/** The command line for `data` (without its newline), or why it cannot be one. */
export function commandLine(data: PacketData): { line: Buffer } | { invalid: string } {
  const line = data instanceof Uint8Array ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.from(typeof data === 'string' ? data : JSON.stringify(data));
  if (line.includes(10) || line.includes(13)) return { invalid: 'a serial command is one line: the data contains a line break (CR or LF)' };
  if (line.length === 0) return { invalid: 'a serial command cannot be empty' };
  return { line };
}

/** The verdict an answer line (`ok ...` / `err ...`) carries. */
export function answerVerdict(answer: string): Verdict {
  if (/^ok(\s|$)/.test(answer)) return { ok: true };
  const reason = answer.replace(/^err\s*/, '').trim();
  return { ok: false, code: ErrorCode.DOWNLINK_REFUSED, reason: reason === '' ? 'the device answered err without a reason' : reason };
}

export class SerialCommands {
  /** the command waiting for its answer */
  private current: AnswerListener | null = null;
  /** resolves when the command in flight is done: the next one waits for it */
  private busy: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly device: CommandDevice, private readonly deps: { clock: Clock; log: Log }) {
    device.setAnswerListener({
      answer: (line) => {
        if (this.current) this.current.answer(line);
        else deps.log.debug('serial: an answer with no command waiting; dropped', { source: device.name, line: line.slice(0, 100) });
      },
      closed: () => this.current?.closed(),
    });
  }

  /** The consumer of one route to this device. */
  consumer(timeoutMs: number): DownlinkConsumer {
    return { deliver: (m) => this.send(m, timeoutMs) };
  }

  async send(m: DownlinkMessage, timeoutMs: number): Promise<Verdict> {
    const cmd = commandLine(m.data);
    if ('invalid' in cmd) return { ok: false, code: ErrorCode.DOWNLINK_INVALID, reason: cmd.invalid };
    const deadline = this.deps.clock.now() + timeoutMs;
    const before = this.busy;
    let release!: () => void;
    this.busy = new Promise((r) => (release = r));
    await before;
    try {
      return await this.run(cmd.line, deadline - this.deps.clock.now(), timeoutMs);
    } finally {
      release();
    }
  }

  /** No more commands; one in flight is answered as if the device closed. */
  close(): void {
    this.closed = true;
    this.current?.closed();
    this.device.setAnswerListener(null);
  }

  private run(line: Buffer, leftMs: number, timeoutMs: number): Promise<Verdict> {
    const { device, deps } = this;
    if (leftMs <= 0) return Promise.resolve({ ok: false, code: ErrorCode.DOWNLINK_TIMEOUT, reason: `the serial device ${device.name} was busy with earlier commands for the whole ${timeoutMs} ms` });
    if (this.closed || !device.isOpen) return Promise.resolve({ ok: false, code: ErrorCode.DOWNLINK_NO_CONSUMER, reason: `the serial device ${device.name} is not open (unplugged?)` });
    return new Promise((resolve) => {
      let done = false;
      const finish = (v: Verdict): void => {
        if (done) return;
        done = true;
        deps.clock.clearTimeout(timer);
        if (this.current === listener) this.current = null;
        resolve(v);
      };
      const listener: AnswerListener = {
        answer: (a) => finish(answerVerdict(a)),
        closed: () => finish({ ok: false, code: ErrorCode.DOWNLINK_NO_CONSUMER, reason: `the serial device ${device.name} closed before it answered` }),
      };
      const timer = deps.clock.setTimeout(() => finish({ ok: false, code: ErrorCode.DOWNLINK_TIMEOUT, reason: `the serial device ${device.name} did not answer ok or err within ${timeoutMs} ms` }), leftMs);
      // Listening before the write: an answer may come before the write's callback.
      this.current = listener;
      device.write(Buffer.concat([line, Buffer.from('\n')])).catch((err: unknown) => {
        finish({ ok: false, code: ErrorCode.DOWNLINK_NO_CONSUMER, reason: `writing to the serial device ${device.name} failed: ${(err as Error).message}` });
      });
    });
  }
}

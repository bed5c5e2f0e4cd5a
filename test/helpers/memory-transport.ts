/**
 * A Transport (protocol/transport.ts) in memory, for unit tests of whatever sits on one end: the
 * module under test sends into `sent`; the test plays the peer by reading `sent` and handing
 * frames to the module with `deliver`. Keeps the contract: frames arrive in order, `closed`
 * resolves once, and nothing is sent or delivered after `close`.
 */
import type { Frame } from '../../protocol/frames.js';
import type { PeerInfo, Transport } from '../../protocol/transport.js';

/** The frame of type `T`. */
export type FrameOf<T extends Frame['t']> = Extract<Frame, { t: T }>;

interface Waiter {
  match: (f: Frame) => boolean;
  from: number;
  resolve: (f: Frame) => void;
}

export class MemoryTransport implements Transport {
  /** every frame the module sent, in order */
  readonly sent: Frame[] = [];
  /** null while open; then the error it was closed with (undefined: a clean close) */
  closedWith: Error | undefined | null = null;
  readonly closed: Promise<Error | undefined>;
  private listener: ((f: Frame) => void) | null = null;
  private resolveClosed!: (e: Error | undefined) => void;
  private sendListeners: ((f: Frame) => void)[] = [];
  private waiters: Waiter[] = [];

  constructor(readonly peer?: PeerInfo) {
    this.closed = new Promise<Error | undefined>((r) => (this.resolveClosed = r));
  }

  send(frame: Frame): void {
    if (this.closedWith !== null) return;
    this.sent.push(frame);
    for (const l of this.sendListeners) l(frame);
    const index = this.sent.length - 1;
    this.waiters = this.waiters.filter((w) => {
      if (index < w.from || !w.match(frame)) return true;
      w.resolve(frame);
      return false;
    });
  }

  onFrame(listener: (f: Frame) => void): void {
    this.listener = listener;
  }

  close(err?: Error): void {
    if (this.closedWith !== null) return;
    this.closedWith = err;
    this.resolveClosed(err);
  }

  get isOpen(): boolean {
    return this.closedWith === null;
  }

  /** Hands `f` to the module, as if the peer had sent it. */
  deliver(f: Frame): void {
    if (this.closedWith === null) this.listener?.(f);
  }

  /** Called synchronously for each frame the module sends, at the moment it sends it. */
  onSend(listener: (f: Frame) => void): void {
    this.sendListeners.push(listener);
  }

  /** The frames of one type sent so far. */
  sentOf<T extends Frame['t']>(type: T): FrameOf<T>[] {
    return this.sent.filter((f): f is FrameOf<T> => f.t === type);
  }

  /**
   * The first frame sent at index `from` or later that `match` accepts: one sent already, or the
   * next one. Rejects after `timeoutMs` of real time, naming `what`, so a frame that never comes
   * fails the test instead of hanging it.
   */
  waitSent(match: (f: Frame) => boolean, what: string, from = 0, timeoutMs = 5000): Promise<Frame> {
    const found = this.sent.slice(from).find(match);
    if (found) return Promise.resolve(found);
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no frame sent: ${what}`));
      }, timeoutMs);
      const waiter: Waiter = {
        match, from,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
      };
      this.waiters.push(waiter);
    });
  }
}

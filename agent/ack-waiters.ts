/**
 * Local clients waiting for the gateway's verdict on one seq (`ferry send --wait`). Fed by the
 * store calls the link makes (agent/ack-watch-store.ts): an ACK answers "acked", a permanent NACK
 * (the packet became a dead letter) answers with its code and reason. Bounded: at most
 * `waitersMax` waits at once, each ended by its own time-out (the packet stays queued).
 *
 * A wait for a seq already done answers at once: from the dead letters if it is one, else
 * "acked". The store cannot tell an acked seq from one it dropped (ttl, drop-oldest when full),
 * so a dropped packet found done reads as acked; one dropped while waited for times out.
 */
import type { Clock } from '../common/clock.js';
import { ErrorCode, FerryError } from '../protocol/errors.js';

export type SendVerdict = { acked: true } | { acked: false; refusal: { code: string; message: string } };

export interface AckWaitersLimits {
  /** waits open at once, over all clients */
  waitersMax: number;
  /** the longest wait a client may ask for */
  waitMsMax: number;
}

export const ackWaitersLimitsDefault: AckWaitersLimits = { waitersMax: 1024, waitMsMax: 3_600_000 };

export interface AckWaitersDeps {
  clock: Clock;
  /** the highest seq the store issued */
  lastSeq(): number;
  /** acked, dead-lettered or dropped */
  isDone(seq: number): boolean;
  /** the dead letter kept for `seq`, if any */
  refusalOf(seq: number): Promise<{ code: string; message: string } | undefined>;
}

interface Waiter {
  seq: number;
  resolve(v: SendVerdict): void;
  reject(err: FerryError): void;
  timer: unknown;
}

export class AckWaiters {
  private readonly waiters = new Set<Waiter>();
  /** seqs whose dead letter is being written: an ACK covering them meanwhile is not their verdict */
  private readonly beingRefused = new Set<number>();

  constructor(private readonly limits: AckWaitersLimits, private readonly deps: AckWaitersDeps) {}

  /** `cancel`: the asker went away; the wait ends (rejected) and frees its slot. */
  async wait(seq: number, timeoutMs: number, cancel?: AbortSignal): Promise<SendVerdict> {
    if (seq > this.deps.lastSeq()) throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, `no packet with seq ${seq} was stored (the last is ${this.deps.lastSeq()})`);
    if (timeoutMs > this.limits.waitMsMax) throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, `timeoutMs ${timeoutMs} is over waitMsMax ${this.limits.waitMsMax}`);
    if (!this.beingRefused.has(seq) && this.deps.isDone(seq)) {
      const refusal = await this.deps.refusalOf(seq);
      return refusal ? { acked: false, refusal: { code: refusal.code, message: refusal.message } } : { acked: true };
    }
    if (this.waiters.size >= this.limits.waitersMax) {
      throw new FerryError(ErrorCode.SEND_WAITERS_FULL, `${this.waiters.size} waits are open, the most the agent keeps (waitersMax); seq ${seq} stays queued`);
    }
    return new Promise<SendVerdict>((resolve, reject) => {
      const w: Waiter = { seq, resolve, reject, timer: null };
      const end = (err: FerryError): void => {
        if (!this.waiters.delete(w)) return;
        this.deps.clock.clearTimeout(w.timer);
        cancel?.removeEventListener('abort', onCancel);
        reject(err);
      };
      const onCancel = (): void => end(new FerryError(ErrorCode.SEND_WAIT_TIMEOUT, `the wait for seq ${seq} was given up by its client; the packet stays queued`));
      w.timer = this.deps.clock.setTimeout(() => end(new FerryError(ErrorCode.SEND_WAIT_TIMEOUT, `no verdict from the gateway on seq ${seq} within ${timeoutMs} ms; the packet stays queued and is sent when the gateway takes it`)), timeoutMs);
      this.waiters.add(w);
      if (cancel?.aborted) onCancel();
      else cancel?.addEventListener('abort', onCancel, { once: true });
    });
  }

  /** The gateway acked every seq in [from, to]. */
  acked(from: number, to: number): void {
    this.settle((s) => s >= from && s <= to && !this.beingRefused.has(s), { acked: true });
  }

  /** A dead letter is being written for `seq`: its verdict is the refusal, whatever ACK comes meanwhile. */
  refusalStarted(seq: number): void {
    this.beingRefused.add(seq);
  }

  /** The dead letter for `seq` is written (or failed to be: the refusal stands). */
  refused(seq: number, code: string, message: string): void {
    this.beingRefused.delete(seq);
    this.settle((s) => s === seq, { acked: false, refusal: { code, message } });
  }

  /** Every wait ends with `err` (the store renumbered its packets, or the agent stops). */
  failAll(err: FerryError): void {
    for (const w of this.waiters) {
      this.deps.clock.clearTimeout(w.timer);
      w.reject(err);
    }
    this.waiters.clear();
  }

  get size(): number {
    return this.waiters.size;
  }

  private settle(match: (seq: number) => boolean, v: SendVerdict): void {
    for (const w of this.waiters) {
      if (!match(w.seq)) continue;
      this.deps.clock.clearTimeout(w.timer);
      this.waiters.delete(w);
      w.resolve(v);
    }
  }
}

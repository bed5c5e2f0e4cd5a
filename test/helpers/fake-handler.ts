/** A handler the test answers by hand (gateway session and core tests). */
import type { DispatchPacket, Handler, HandlerResult } from '../../gateway/handlers/handler.js';

const ok: HandlerResult = { ok: true };

/**
 * A handler whose calls wait for the test (`finish`), unless `auto` answers them at once.
 * `calls` lists the seqs handed over, in call order.
 */
export class FakeHandler implements Handler {
  readonly kind = 'fake';
  readonly calls: number[] = [];
  private readonly waiting: { seq: number; resolve: (r: HandlerResult) => void }[] = [];
  constructor(private readonly auto?: (p: DispatchPacket, call: number) => HandlerResult | undefined, readonly inflightMax = 1) {}
  handle(p: DispatchPacket): Promise<HandlerResult> {
    this.calls.push(p.seq);
    const r = this.auto?.(p, this.calls.length);
    if (r) return Promise.resolve(r);
    return new Promise((resolve) => this.waiting.push({ seq: p.seq, resolve }));
  }
  /** Seqs whose call has not been answered. */
  get open(): number[] {
    return this.waiting.map((w) => w.seq);
  }
  /** Answers the oldest open call for `seq`. */
  finish(seq: number, r: HandlerResult = ok): void {
    const i = this.waiting.findIndex((w) => w.seq === seq);
    if (i < 0) throw new Error(`seq ${seq} is not in the handler`);
    this.waiting.splice(i, 1)[0]!.resolve(r);
  }
  async close(): Promise<void> {}
}

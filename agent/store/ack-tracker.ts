import { RangeSet } from '../../common/range-set.js';

/**
 * Which seqs are done: everything up to `ackedSeq`, plus ranges above it that were acked one by
 * one, dropped or never assigned. The cumulative point moves over done ranges as soon as they
 * follow it, so the ranges kept stay few.
 */
export class AckTracker {
  private readonly done: RangeSet;

  constructor(public ackedSeq = 0, done: [number, number][] = []) {
    this.done = new RangeSet(done);
    this.absorb();
  }

  isDone(seq: number): boolean {
    return seq <= this.ackedSeq || this.done.has(seq);
  }

  /** Marks [from, to] done (from clamped above ackedSeq); returns how many were not done before. */
  markDone(from: number, to = from): number {
    const n = this.done.add(Math.max(from, this.ackedSeq + 1), to);
    this.absorb();
    return n;
  }

  /** Cumulative: everything up to `seq` is done; returns how many were not done before. */
  doneThrough(seq: number): number {
    if (seq <= this.ackedSeq) return 0;
    const newly = seq - this.ackedSeq - this.done.countIn(this.ackedSeq + 1, seq);
    this.ackedSeq = seq;
    this.done.dropThrough(seq);
    this.absorb();
    return newly;
  }

  /** Done seqs in [from, to]. */
  countDoneIn(from: number, to: number): number {
    if (to < from) return 0;
    const below = Math.max(0, Math.min(to, this.ackedSeq) - from + 1);
    return below + this.done.countIn(Math.max(from, this.ackedSeq + 1), to);
  }

  /** The ranges above ackedSeq, at most `rangesMax` of them (the rest is forgotten, not lost: resent). */
  ranges(rangesMax: number): [number, number][] {
    return this.done.toArray(rangesMax);
  }

  private absorb(): void {
    for (let end = this.done.takePrefix(this.ackedSeq + 1); end !== null; end = this.done.takePrefix(this.ackedSeq + 1)) {
      this.ackedSeq = Math.max(this.ackedSeq, end);
    }
  }
}

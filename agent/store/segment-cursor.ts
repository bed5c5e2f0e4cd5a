import type { FileHandle, Files } from '../../common/files.js';
import type { Packet } from '../../protocol/packet.js';
import type { SegmentMeta } from './recover.js';
import { scanSegment, segmentHeaderBytes, segmentTrailerBytes, type ScanItem } from './segment.js';

/**
 * Reads one segment forward from disk, a chunk at a time: memory stays a chunk whatever the
 * backlog. Damage met on the way is not returned; the seqs it swallowed (seqs are contiguous
 * within a segment) are collected in `lost` for the store to count and skip.
 */
export class SegmentCursor {
  /** seq ranges lost to damage, taken by the store */
  readonly lost: [number, number][] = [];
  damageSeen = false;
  private gen: AsyncGenerator<ScanItem> | null = null;
  private offset = segmentHeaderBytes;
  private prevSeq: number;
  private damagePending = false;

  private constructor(readonly segment: SegmentMeta, private readonly fh: FileHandle, public after: number) {
    this.prevSeq = segment.baseSeq - 1;
  }

  static async open(files: Files, segment: SegmentMeta, after: number): Promise<SegmentCursor> {
    return new SegmentCursor(segment, await files.open(segment.path, { readOnly: true }), after);
  }

  /** Where the records end now: the active segment grows between calls. */
  private end(): number {
    return this.segment.trailer ? this.segment.bytes - segmentTrailerBytes : this.segment.bytes;
  }

  /** The next packet with seq > `after`, or null at the end of what the segment holds now. */
  async next(): Promise<Packet | null> {
    for (;;) {
      if (!this.gen) {
        const to = this.end();
        if (this.offset >= to) return this.finish();
        this.gen = scanSegment(this.fh, this.segment.baseSeq, this.offset, to);
      }
      const r = await this.gen.next();
      if (r.done) {
        this.gen = null;
        if (this.offset >= this.end()) return this.finish();
        continue;
      }
      const item = r.value;
      if (item.kind === 'damage') {
        this.damagePending = true;
        this.damageSeen = true;
        this.offset = item.to;
        continue;
      }
      this.offset = item.end;
      if (item.record.kind !== 'packet') continue;
      const seq = item.record.packet.seq;
      if (seq <= this.prevSeq) continue;
      if (this.damagePending && seq > this.prevSeq + 1) this.lost.push([this.prevSeq + 1, seq - 1]);
      this.damagePending = false;
      this.prevSeq = seq;
      if (seq <= this.after) continue;
      this.after = seq;
      return item.record.packet;
    }
  }

  private finish(): null {
    // Damage up to a sealed segment's end took the seqs up to its recorded last one.
    if (this.damagePending && this.segment.sealed && this.segment.lastSeq > this.prevSeq) this.lost.push([this.prevSeq + 1, this.segment.lastSeq]);
    this.damagePending = false;
    this.prevSeq = Math.max(this.prevSeq, this.segment.sealed ? this.segment.lastSeq : this.prevSeq);
    return null;
  }

  async close(): Promise<void> {
    await this.gen?.return(undefined);
    await this.fh.close().catch(() => undefined);
  }
}

import type { Files } from '../../common/files.js';
import type { Packet } from '../../protocol/packet.js';
import type { AckTracker } from './ack-tracker.js';
import type { SegmentMeta } from './recover.js';
import { SegmentCursor } from './segment-cursor.js';
import type { TailCache } from './tail-cache.js';

/**
 * The first durable packet that is neither acked nor dropped: from the tail cache when the
 * backlog starts there, else read from flash with a cursor of its own, one segment after another,
 * stopping at that packet. A segment deleted meanwhile (all acked) is passed over. Damage is
 * skipped here and left for the link's reads to count.
 */
export async function firstUnacked(src: { acks: AckTracker; cache: TailCache; segments: readonly SegmentMeta[]; files: Files }): Promise<Packet | null> {
  const { acks, cache } = src;
  const after = acks.ackedSeq;
  const cacheFirst = cache.firstSeq;
  if (cacheFirst !== undefined && cacheFirst <= after + 1) {
    for (let i = cache.indexAfter(after); i < cache.length; i++) if (!acks.isDone(cache.at(i).seq)) return cache.at(i);
    return null;
  }
  for (const seg of src.segments) {
    if (seg.lastSeq <= after) continue;
    let cursor: SegmentCursor;
    try {
      cursor = await SegmentCursor.open(src.files, seg, after);
    } catch {
      continue;
    }
    try {
      for (let p = await cursor.next(); p; p = await cursor.next()) if (!acks.isDone(p.seq)) return p;
    } catch {
      // unreadable now: the next segment may still tell
    } finally {
      await cursor.close();
    }
  }
  return null;
}

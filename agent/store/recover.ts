/**
 * Opening a store directory after anything: a clean stop, a SIGKILL, a power cut, flipped bits.
 * Sealed segments are known from their header and trailer alone (O(segments), not O(backlog));
 * the tail segment is scanned record by record: a torn tail is cut, damage before intact records
 * is skipped and counted. Nothing here ever throws because of the files' contents.
 */
import { join } from 'node:path';
import type { FileHandle, Files } from '../../common/files.js';
import type { Log } from '../../common/log.js';
import type { AckState } from './record-codec.js';
import { baseSeqFromName, decodeHeader, decodeTrailer, scanSegment, segmentHeaderBytes, segmentTrailerBytes, type SegmentSummary } from './segment.js';

export interface SegmentMeta extends SegmentSummary {
  baseSeq: number;
  path: string;
  bytes: number;
  sealed: boolean;
  /** the file ends with a valid trailer (excluded from the records) */
  trailer: boolean;
  /** damage was found in it: kept in damaged/ instead of deleted once done */
  damaged: boolean;
}

export interface Recovered {
  segments: SegmentMeta[];
  acks: AckState;
  tailBytesCut: number;
  damagedSegments: number;
  /** seqs lost to damage, to be marked done */
  lostRanges: [number, number][];
  /** seqs between two intact records of a scanned segment with no damage between them: never durably written */
  gaps: [number, number][];
  acksFound: boolean;
}

export async function recoverSegments(files: Files, dir: string, log: Log): Promise<Recovered> {
  const names = (await files.readdir(dir)).map((n) => ({ n, base: baseSeqFromName(n) })).filter((x): x is { n: string; base: number } => x.base !== null);
  names.sort((a, b) => a.base - b.base);
  const out: Recovered = { segments: [], acks: { ackedSeq: 0, done: [], lastSeq: 0 }, tailBytesCut: 0, damagedSegments: 0, lostRanges: [], gaps: [], acksFound: false };
  // A newest segment whose creation was cut short (killed before its header and first ack record
  // were durable) holds nothing: remove it, so the segment before it is the tail that gets scanned.
  while (names.length > 0) {
    const path = join(dir, names[names.length - 1]!.n);
    const fh = await files.open(path, { readOnly: true });
    const size = await fh.size();
    const head = Buffer.alloc(segmentHeaderBytes);
    await fh.read(head, 0, segmentHeaderBytes, 0);
    await fh.close();
    // Shorter than a header, or a bad header with room for no more than the first ack record.
    if (size >= segmentHeaderBytes && (decodeHeader(head) !== null || size > segmentHeaderBytes + 64)) break;
    log.warn('store: removed a segment whose creation was cut short', { path, bytes: size });
    out.tailBytesCut += size;
    await files.unlink(path);
    names.pop();
  }
  for (const [i, { n, base }] of names.entries()) {
    const path = join(dir, n);
    const isTail = i === names.length - 1;
    const fh = await files.open(path, { readOnly: !isTail });
    try {
      const size = await fh.size();
      const head = Buffer.alloc(segmentHeaderBytes);
      await fh.read(head, 0, segmentHeaderBytes, 0);
      const headerBase = decodeHeader(head);
      if (headerBase !== null && headerBase !== base) log.warn('store: segment header disagrees with its name; using the name', { path, headerBase });
      const tail = Buffer.alloc(segmentTrailerBytes);
      if (size >= segmentHeaderBytes + segmentTrailerBytes) await fh.read(tail, 0, segmentTrailerBytes, size - segmentTrailerBytes);
      const trailer = size >= segmentHeaderBytes + segmentTrailerBytes ? decodeTrailer(tail) : null;
      const meta: SegmentMeta = { baseSeq: base, path, bytes: size, sealed: trailer !== null || !isTail, trailer: trailer !== null, damaged: headerBase === null && size > 0, lastSeq: base - 1, packets: 0, maxPriority: 0 };
      if (trailer && !isTail) {
        Object.assign(meta, trailer);
      } else {
        // The tail, or a sealed segment whose trailer is gone (a crash while rolling): scan it.
        const end = trailer ? size - segmentTrailerBytes : size;
        if (isTail) out.acksFound = false; // from here on: did the tail hold an ack state?
        const openTail = isTail && !trailer;
        // What the scan starts from, kept for a second scan of an open tail (scans add to both).
        const again = openTail ? { meta: { ...meta }, out: { ...out, lostRanges: [...out.lostRanges], gaps: [...out.gaps] } } : null;
        let r = await scanInto(fh, meta, end, out, openTail);
        if (again && r.validEnd < size) {
          // Before cutting, read once more: a bit flipped on the way (not on the disk) must not
          // cost a durable record, and with it the seq it holds.
          const r2 = await scanInto(fh, again.meta, end, again.out, true);
          if (r2.validEnd > r.validEnd) {
            Object.assign(meta, again.meta);
            Object.assign(out, again.out);
            r = r2;
          }
        }
        if (openTail && r.validEnd < size) {
          log.warn('store: cut a torn tail', { path, bytes: size - r.validEnd });
          out.tailBytesCut += size - r.validEnd;
          await fh.truncate(r.validEnd);
          await fh.datasync();
          meta.bytes = r.validEnd;
        }
        if (trailer) Object.assign(meta, trailer);
      }
      if (meta.damaged) out.damagedSegments++;
      out.segments.push(meta);
    } finally {
      await fh.close().catch(() => undefined);
    }
  }
  // Every segment starts with the ack state, so the tail normally has one; if its first record was
  // torn away, the newest ack state is in the segments before it.
  for (let i = out.segments.length - 2; i >= 0 && !out.acksFound; i--) {
    const meta = out.segments[i]!;
    const fh = await files.open(meta.path, { readOnly: true });
    try {
      for await (const item of scanSegment(fh, meta.baseSeq, segmentHeaderBytes, meta.trailer ? meta.bytes - segmentTrailerBytes : meta.bytes)) {
        if (item.kind === 'record' && item.record.kind === 'acks' && item.record.acks.ackedSeq >= out.acks.ackedSeq) {
          out.acks = item.record.acks;
          out.acksFound = true;
        }
      }
    } finally {
      await fh.close();
    }
  }
  return out;
}

/** Scans [header, end) of one segment into `meta`; the last acks record seen wins. */
async function scanInto(fh: FileHandle, meta: SegmentMeta, end: number, out: Recovered, isOpenTail: boolean): Promise<{ validEnd: number }> {
  let validEnd = segmentHeaderBytes;
  let lastPacketSeq = meta.baseSeq - 1;
  let damageSince: number | null = null;
  let damageEnd = 0;
  for await (const item of scanSegment(fh, meta.baseSeq, segmentHeaderBytes, Math.max(segmentHeaderBytes, end))) {
    if (item.kind === 'damage') {
      damageSince = lastPacketSeq;
      damageEnd = item.to;
      continue;
    }
    validEnd = item.end;
    const rec = item.record;
    if (rec.kind === 'acks') {
      if (rec.acks.ackedSeq >= out.acks.ackedSeq) out.acks = rec.acks;
      out.acksFound = true;
      continue;
    }
    const seq = rec.packet.seq;
    if (seq <= lastPacketSeq) continue;
    if (damageSince !== null) {
      // Damage between two intact records: the seqs between them are lost.
      meta.damaged = true;
      if (seq - damageSince > 1) {
        out.lostRanges.push([damageSince + 1, seq - 1]);
      }
      damageSince = null;
    } else if (seq - lastPacketSeq > 1) {
      // No damage between them: the seqs in between were never written (a batch that failed).
      out.gaps.push([lastPacketSeq + 1, seq - 1]);
    }
    lastPacketSeq = seq;
    meta.packets++;
    meta.maxPriority = Math.max(meta.maxPriority, rec.packet.priority ?? 0);
  }
  // Damage at the very end of an open tail is a torn tail (cut by the caller), not corruption.
  // Damage followed only by ack records swallowed the packets up to the seq those records knew.
  if (damageSince !== null && validEnd > damageEnd) {
    meta.damaged = true;
    if (out.acks.lastSeq > damageSince) {
      out.lostRanges.push([damageSince + 1, out.acks.lastSeq]);
    }
  } else if (damageSince !== null && !isOpenTail) meta.damaged = true;
  meta.lastSeq = lastPacketSeq;
  return { validEnd };
}

/**
 * Segment files: `<baseSeq as 20 digits>.seg` = header | records | trailer (once sealed).
 * A record is framed by common/record.ts (u32 length, u32 CRC-32, body). The reader verifies
 * every record's CRC and, past a damaged spot, searches byte by byte for the next intact record,
 * so one flipped byte costs the records it hit, not the rest of the segment.
 */
import { crc32 } from 'node:zlib';
import type { FileHandle } from '../../common/files.js';
import { recordBodyBytesMax, recordHeaderBytes } from '../../common/record.js';
import { decodeRecord, type DecodedRecord } from './record-codec.js';

export const segmentHeaderBytes = 32;
export const segmentTrailerBytes = 32;
const headerMagic = Buffer.from('FERRYSEG');
const trailerMagic = Buffer.from('FERRYEND');
const formatVersion = 1;

export const segmentFileName = (baseSeq: number): string => `${String(baseSeq).padStart(20, '0')}.seg`;

export function baseSeqFromName(name: string): number | null {
  const m = /^(\d{20})\.seg$/.exec(name);
  return m ? Number(m[1]) : null;
}

/** magic(8) | u32 version | u32 0 | f64 baseSeq | u32 crc(0..24) | u32 0 */
export function encodeHeader(baseSeq: number): Buffer {
  const b = Buffer.alloc(segmentHeaderBytes);
  headerMagic.copy(b, 0);
  b.writeUInt32BE(formatVersion, 8);
  b.writeDoubleBE(baseSeq, 16);
  b.writeUInt32BE(crc32(b.subarray(0, 24)), 24);
  return b;
}

export function decodeHeader(b: Buffer): number | null {
  if (b.length < segmentHeaderBytes || !b.subarray(0, 8).equals(headerMagic)) return null;
  if (b.readUInt32BE(24) !== crc32(b.subarray(0, 24))) return null;
  const base = b.readDoubleBE(16);
  return Number.isSafeInteger(base) && base >= 1 ? base : null;
}

export interface SegmentSummary {
  /** highest packet seq in the segment (baseSeq - 1 if it holds none) */
  lastSeq: number;
  packets: number;
  maxPriority: number;
}

/** magic(8) | f64 lastSeq | u32 packets | u8 maxPriority | 3×0 | u32 crc(0..24) | 4×0 */
export function encodeTrailer(s: SegmentSummary): Buffer {
  const b = Buffer.alloc(segmentTrailerBytes);
  trailerMagic.copy(b, 0);
  b.writeDoubleBE(s.lastSeq, 8);
  b.writeUInt32BE(s.packets, 16);
  b[20] = s.maxPriority;
  b.writeUInt32BE(crc32(b.subarray(0, 24)), 24);
  return b;
}

export function decodeTrailer(b: Buffer): SegmentSummary | null {
  if (b.length < segmentTrailerBytes || !b.subarray(0, 8).equals(trailerMagic)) return null;
  if (b.readUInt32BE(24) !== crc32(b.subarray(0, 24))) return null;
  const lastSeq = b.readDoubleBE(8);
  if (!Number.isSafeInteger(lastSeq) || lastSeq < 0) return null;
  return { lastSeq, packets: b.readUInt32BE(16), maxPriority: b[20]! };
}

export type ScanItem =
  | { kind: 'record'; record: DecodedRecord; offset: number; end: number }
  /** bytes [from, to) held no intact record */
  | { kind: 'damage'; from: number; to: number };

const chunkBytes = 256 * 1024;

/**
 * Reads the records of one segment from byte `from` to byte `to`, in order. Yields each intact
 * record, and a `damage` item for every stretch without one (at the end: a torn tail).
 */
export async function* scanSegment(fh: FileHandle, baseSeq: number, from: number, to: number): AsyncGenerator<ScanItem> {
  let buf = Buffer.alloc(0);
  // One read buffer for the whole scan, refilled in place: decoded records copy what they keep,
  // so memory stays one chunk and the allocator is not churned by a read per chunk.
  let scratch = Buffer.allocUnsafe(Math.min(chunkBytes, Math.max(0, to - from)));
  let bufStart = from;
  let off = from;
  let damageFrom = -1;
  const fill = async (need: number): Promise<boolean> => {
    // Make [off, off + need) available in buf, reading a chunk or more from the file.
    const have = bufStart + buf.length - off;
    if (have >= need) return true;
    if (off + need > to) return false;
    const want = Math.min(to - off, Math.max(need, chunkBytes));
    if (want > scratch.length) scratch = Buffer.allocUnsafe(want);
    const bytesRead = await fh.read(scratch, 0, want, off);
    buf = scratch.subarray(0, bytesRead);
    bufStart = off;
    return bytesRead >= need;
  };
  while (off < to) {
    let item: ScanItem | null = null;
    if (await fill(recordHeaderBytes)) {
      const at = off - bufStart;
      const len = buf.readUInt32BE(at);
      // While searching past damage, only frames that fit the buffer are tried: a garbage length
      // must not cost a read of its own at every byte.
      const inBuffer = at + recordHeaderBytes + len <= buf.length;
      const plausible = len > 0 && len <= recordBodyBytesMax && (damageFrom < 0 || inBuffer || len <= chunkBytes / 2);
      if (plausible && (await fill(recordHeaderBytes + len))) {
        const a = off - bufStart;
        const body = buf.subarray(a + recordHeaderBytes, a + recordHeaderBytes + len);
        if (crc32(body) === buf.readUInt32BE(a + 4)) {
          const record = decodeRecord(body, baseSeq);
          if (record) item = { kind: 'record', record, offset: off, end: off + recordHeaderBytes + len };
        }
      }
    }
    if (item && item.kind === 'record') {
      if (damageFrom >= 0) {
        yield { kind: 'damage', from: damageFrom, to: off };
        damageFrom = -1;
      }
      off = item.end;
      yield item;
    } else {
      if (damageFrom < 0) damageFrom = off;
      off++;
    }
  }
  if (damageFrom >= 0) yield { kind: 'damage', from: damageFrom, to };
}

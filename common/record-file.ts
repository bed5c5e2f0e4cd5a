/**
 * Reading a file of CRC-framed records (common/record.ts) at open, shared by the gateway's
 * dispatch log, its downlink queue and the agent's answered log.
 */
import type { FileHandle } from './files.js';
import { recordHeaderBytes, scanRecords } from './record.js';

/** Reads of one piece before a record that fails its CRC is taken for damage on the disk. */
const readsPerPieceMax = 3;

/** Reads `length` bytes at `position`, whole; a file that ends first is EIO (`what` names it in the message). */
export async function readExactly(fh: FileHandle, position: number, length: number, what: string): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  for (let off = 0; off < length; ) {
    const n = await fh.read(buf, off, length - off, position + off);
    if (n === 0) throw Object.assign(new Error(`${what} ended at ${position + off} bytes while read`), { code: 'EIO' });
    off += n;
  }
  return buf;
}

/**
 * Reads the file's first `size` bytes in pieces (each holds at least one record of the largest
 * size, `recordBodyBytesMax`), hands each valid record body to `learn`, and returns where the last
 * one ends: the caller cuts what follows as a torn tail. A record that fails its CRC ends what is
 * read, but before that the piece is read again (up to three reads, the longest valid run wins),
 * so a bit flipped on the way, not on the disk, does not cost the records after it.
 */
export async function scanRecordFile(
  fh: FileHandle, size: number, o: { recordBodyBytesMax: number; ioChunkBytes: number; what: string }, learn: (body: Buffer) => void,
): Promise<number> {
  const pieceBytes = Math.max(o.ioChunkBytes, recordHeaderBytes + o.recordBodyBytesMax);
  // Whether the scan of `piece` stopped at `at` only because the record there runs past the piece's end.
  const cutByPiece = (piece: Buffer, at: number): boolean => {
    if (piece.length - at < recordHeaderBytes) return true;
    const len = piece.readUInt32BE(at);
    return len <= o.recordBodyBytesMax && at + recordHeaderBytes + len > piece.length;
  };
  let off = 0;
  for (;;) {
    const len = Math.min(size - off, pieceBytes);
    if (len === 0) return off;
    const atEnd = off + len === size;
    let piece: Buffer = Buffer.alloc(0);
    let found = { bodies: [] as Buffer[], validBytes: -1 };
    for (let attempt = 0; attempt < readsPerPieceMax; attempt++) {
      const buf = await readExactly(fh, off, len, o.what);
      const again = scanRecords(buf, o.recordBodyBytesMax);
      if (again.validBytes > found.validBytes) [found, piece] = [again, buf];
      if (found.validBytes === len || (!atEnd && cutByPiece(piece, found.validBytes))) break;
    }
    for (const body of found.bodies) learn(body);
    off += found.validBytes;
    if (found.validBytes === len) {
      if (atEnd) return off;
    } else if (atEnd || !cutByPiece(piece, found.validBytes)) {
      return off; // damage: from here on it is a torn tail
    }
    // Otherwise the next piece starts with the record this one cut short.
  }
}

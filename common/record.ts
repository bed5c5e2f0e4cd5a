import { crc32 } from 'node:zlib';

/**
 * Record framing shared by the agent's files: u32 body length, u32 CRC-32 of the body, body.
 * A reader stops at the first record that is short or fails its CRC: that is a torn tail.
 */
export const recordHeaderBytes = 8;
export const recordBodyBytesMax = 16 * 1024 * 1024;

export function frameRecord(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(recordHeaderBytes + body.length);
  out.writeUInt32BE(body.length, 0);
  out.writeUInt32BE(crc32(body), 4);
  out.set(body, recordHeaderBytes);
  return out;
}

/** Splits a buffer into record bodies; `validBytes` is where the last intact record ends. */
export function scanRecords(buf: Buffer): { bodies: Buffer[]; validBytes: number } {
  const bodies: Buffer[] = [];
  let off = 0;
  while (off + recordHeaderBytes <= buf.length) {
    const len = buf.readUInt32BE(off);
    if (len > recordBodyBytesMax || off + recordHeaderBytes + len > buf.length) break;
    const body = buf.subarray(off + recordHeaderBytes, off + recordHeaderBytes + len);
    if (crc32(body) !== buf.readUInt32BE(off + 4)) break;
    bodies.push(body);
    off += recordHeaderBytes + len;
  }
  return { bodies, validBytes: off };
}

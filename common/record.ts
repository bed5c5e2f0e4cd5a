import { crc32 } from 'node:zlib';
import { ErrorCode, FerryError } from '../protocol/errors.js';

/**
 * Record framing shared by the agent's files and the gateway's dispatch log: u32 body length,
 * u32 CRC-32 of the body, body. A reader stops at the first record that is short, fails its CRC
 * or claims a body over `recordBodyBytesMax`: that is a torn tail. So a writer must never frame a
 * body over that maximum (`frameRecord` refuses it, RECORD_TOO_LARGE): it would be written
 * whole and durable, and then read back as a torn tail, cut with everything after it.
 */
export const recordHeaderBytes = 8;
export const recordBodyBytesMax = 16 * 1024 * 1024;

/** Frames `body`; throws RECORD_TOO_LARGE past `bodyBytesMax` (injectable for tests: a reader must use the same). */
export function frameRecord(body: Uint8Array, bodyBytesMax = recordBodyBytesMax): Buffer {
  if (body.length > bodyBytesMax) {
    throw new FerryError(ErrorCode.RECORD_TOO_LARGE, `a record body of ${body.length} bytes is over the ${bodyBytesMax} a reader accepts`);
  }
  const out = Buffer.allocUnsafe(recordHeaderBytes + body.length);
  out.writeUInt32BE(body.length, 0);
  out.writeUInt32BE(crc32(body), 4);
  out.set(body, recordHeaderBytes);
  return out;
}

/** Splits a buffer into record bodies; `validBytes` is where the last intact record ends. */
export function scanRecords(buf: Buffer, bodyBytesMax = recordBodyBytesMax): { bodies: Buffer[]; validBytes: number } {
  const bodies: Buffer[] = [];
  let off = 0;
  while (off + recordHeaderBytes <= buf.length) {
    const len = buf.readUInt32BE(off);
    if (len > bodyBytesMax || off + recordHeaderBytes + len > buf.length) break;
    const body = buf.subarray(off + recordHeaderBytes, off + recordHeaderBytes + len);
    if (crc32(body) !== buf.readUInt32BE(off + 4)) break;
    bodies.push(body);
    off += recordHeaderBytes + len;
  }
  return { bodies, validBytes: off };
}

import { Decoder, Encoder } from 'cbor-x';
import { ErrorCode, FerryError } from './errors.js';
import { frameFromValue, type Frame } from './frames.js';

/**
 * Framing on a byte stream: a 4-byte big-endian body length, then a CBOR body.
 * The length is checked against `frameBytesMax` before a byte of the body is kept.
 */
export const frameHeaderBytes = 4;
export const frameBytesMaxDefault = 1024 * 1024;

// Plain CBOR (no cbor-x record extension) so any CBOR implementation can speak the protocol.
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, variableMapSize: true });
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true });

export function encodeFrame(frame: Frame): Buffer {
  const body = cbor.encode(frame);
  const out = Buffer.allocUnsafe(frameHeaderBytes + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, frameHeaderBytes);
  return out;
}

export function decodeBody(body: Uint8Array): Frame {
  let value: unknown;
  try {
    value = cborDecoder.decode(body);
  } catch (err) {
    throw new FerryError(ErrorCode.FRAME_MALFORMED, `malformed frame: body is not CBOR (${(err as Error).message})`, { cause: err });
  }
  return frameFromValue(value);
}

/**
 * Push-based frame decoder with no IO: `push(bytes)` returns every frame completed by those bytes,
 * whatever the chunk boundaries. After it throws, the stream is out of sync: drop the connection.
 */
export class FrameDecoder {
  private readonly frameBytesMax: number;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed = false;

  constructor(opts: { frameBytesMax?: number } = {}) {
    this.frameBytesMax = opts.frameBytesMax ?? frameBytesMaxDefault;
  }

  push(bytes: Uint8Array): Frame[] {
    if (this.failed) throw new FerryError(ErrorCode.PROTOCOL_STATE, 'decoder already failed');
    if (bytes.length > 0) {
      this.chunks.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      this.buffered += bytes.length;
    }
    const frames: Frame[] = [];
    try {
      for (;;) {
        if (this.buffered < frameHeaderBytes) break;
        const bodyBytes = this.peekLength();
        if (bodyBytes > this.frameBytesMax) {
          throw new FerryError(ErrorCode.FRAME_TOO_LARGE, `frame of ${bodyBytes} bytes exceeds the maximum of ${this.frameBytesMax}`);
        }
        if (bodyBytes === 0) throw new FerryError(ErrorCode.FRAME_MALFORMED, 'malformed frame: empty body');
        if (this.buffered < frameHeaderBytes + bodyBytes) break;
        const whole = this.take(frameHeaderBytes + bodyBytes);
        frames.push(decodeBody(whole.subarray(frameHeaderBytes)));
      }
    } catch (err) {
      this.failed = true;
      this.chunks = [];
      this.buffered = 0;
      throw err;
    }
    return frames;
  }

  /** Bytes held for a frame not yet complete. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Reads the 4-byte length across however many small chunks hold it, without merging the rest. */
  private peekLength(): number {
    const first = this.chunks[0]!;
    if (first.length >= frameHeaderBytes) return first.readUInt32BE(0);
    const head = Buffer.allocUnsafe(frameHeaderBytes);
    let filled = 0;
    for (const c of this.chunks) {
      filled += c.copy(head, filled, 0, Math.min(c.length, frameHeaderBytes - filled));
      if (filled === frameHeaderBytes) break;
    }
    return head.readUInt32BE(0);
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.chunks, this.buffered);
      out = all.subarray(0, n);
      this.chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.buffered -= n;
    return out;
  }
}

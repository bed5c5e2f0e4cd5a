import { Decoder, Encoder } from 'cbor-x';
import { ErrorCode, FerryError } from './errors.js';
import { frameFromValue, type Frame } from './frames.js';
import type { Packet } from './packet.js';

/**
 * Framing on a byte stream: a 4-byte big-endian body length, then a CBOR body.
 * The length is checked against `frameBytesMax` before a byte of the body is kept.
 */
export const frameHeaderBytes = 4;
export const frameBytesMaxDefault = 1024 * 1024;

// Plain CBOR (no cbor-x record extension) so any CBOR implementation can speak the protocol.
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, variableMapSize: true });
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true });

/** A frame's CBOR body without the length prefix (the long-poll carrier's message). */
export function encodeFrameBody(frame: Frame): Buffer {
  return cbor.encode(frame);
}

export function encodeFrame(frame: Frame): Buffer {
  const body = cbor.encode(frame);
  const out = Buffer.allocUnsafe(frameHeaderBytes + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, frameHeaderBytes);
  return out;
}

/**
 * A DATA frame body besides its packets: the map header, `t`, the `packets` key and the array
 * header (up to 65,535 packets). A frame's body is at most this plus each packet's packetWireBytes.
 */
export const dataFrameOverheadBytes = 16;

/** One packet's bytes inside a DATA frame body (its CBOR map, encoded as encodeFrame does). */
export function packetWireBytes(p: Packet): number {
  return cbor.encode(p).length;
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

/** The body buffer of a partial frame starts this small and doubles as bytes arrive, up to the frame's size. */
const bodyBytesInitial = 256;

/**
 * Push-based frame decoder with no IO: `push(bytes)` returns every frame completed by those bytes,
 * whatever the chunk boundaries. After it throws, the stream is out of sync: drop the connection.
 *
 * Memory: a frame whole inside one push is decoded where it lies; a partial one is copied into
 * one buffer that grows geometrically up to the announced size, so what the decoder keeps is at
 * most twice the bytes it holds (plus a small constant), however the bytes were split. (It once
 * kept every read as its own Buffer: a large frame trickled a byte per read cost ~800 bytes each.)
 */
export class FrameDecoder {
  private readonly frameBytesMax: number;
  /** the limit for the first frame only (the gateway's HELLO), then frameBytesMax */
  private limit: number;
  private readonly head = Buffer.alloc(frameHeaderBytes);
  private headFilled = 0;
  /** the body of the frame in progress, once its header is read; null between frames */
  private body: Buffer | null = null;
  private bodyBytes = 0;
  private bodyFilled = 0;
  private failed = false;

  constructor(opts: { frameBytesMax?: number; firstFrameBytesMax?: number } = {}) {
    this.frameBytesMax = opts.frameBytesMax ?? frameBytesMaxDefault;
    this.limit = Math.min(this.frameBytesMax, opts.firstFrameBytesMax ?? Infinity);
  }

  push(bytes: Uint8Array): Frame[] {
    if (this.failed) throw new FerryError(ErrorCode.PROTOCOL_STATE, 'decoder already failed');
    const chunk = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const frames: Frame[] = [];
    try {
      let at = 0;
      while (at < chunk.length) {
        if (this.headFilled === 0 && chunk.length - at >= frameHeaderBytes) {
          // Between frames with a whole header at hand: no copy unless the body is cut off.
          const n = this.checkLength(chunk.readUInt32BE(at));
          at += frameHeaderBytes;
          if (chunk.length - at >= n) {
            frames.push(this.complete(chunk.subarray(at, at + n)));
            at += n;
            continue;
          }
          this.headFilled = frameHeaderBytes;
          this.startBody(n);
        } else if (this.headFilled < frameHeaderBytes) {
          const n = Math.min(frameHeaderBytes - this.headFilled, chunk.length - at);
          chunk.copy(this.head, this.headFilled, at, at + n);
          this.headFilled += n;
          at += n;
          if (this.headFilled < frameHeaderBytes) break;
          this.startBody(this.checkLength(this.head.readUInt32BE(0)));
        }
        const n = Math.min(this.bodyBytes - this.bodyFilled, chunk.length - at);
        this.fillBody(chunk, at, n);
        at += n;
        if (this.bodyFilled === this.bodyBytes) {
          // The decoded frame may point into this buffer (cbor-x returns byte strings as views): hand it over, never reuse it.
          const whole = this.body!;
          this.body = null;
          this.headFilled = 0;
          this.bodyFilled = 0;
          frames.push(this.complete(whole));
        }
      }
    } catch (err) {
      this.failed = true;
      this.body = null;
      this.headFilled = 0;
      this.bodyFilled = 0;
      throw err;
    }
    return frames;
  }

  /** Bytes held for a frame not yet complete. */
  get bufferedBytes(): number {
    return this.headFilled + this.bodyFilled;
  }

  /** Bytes the decoder has allocated and keeps (at most ~2 × bufferedBytes + a small constant). */
  get retainedBytes(): number {
    return this.head.length + (this.body?.length ?? 0);
  }

  private checkLength(n: number): number {
    if (n > this.limit) {
      throw new FerryError(ErrorCode.FRAME_TOO_LARGE, `frame of ${n} bytes exceeds the maximum of ${this.limit}${this.limit < this.frameBytesMax ? ' for a first frame' : ''}`);
    }
    if (n === 0) throw new FerryError(ErrorCode.FRAME_MALFORMED, 'malformed frame: empty body');
    return n;
  }

  private startBody(n: number): void {
    this.bodyBytes = n;
    this.bodyFilled = 0;
    this.body = Buffer.allocUnsafeSlow(Math.min(n, bodyBytesInitial));
  }

  private fillBody(chunk: Buffer, at: number, n: number): void {
    const need = this.bodyFilled + n;
    if (need > this.body!.length) {
      const grown = Buffer.allocUnsafeSlow(Math.min(this.bodyBytes, Math.max(need, 2 * this.body!.length)));
      this.body!.copy(grown, 0, 0, this.bodyFilled);
      this.body = grown;
    }
    chunk.copy(this.body!, this.bodyFilled, at, at + n);
    this.bodyFilled = need;
  }

  private complete(body: Buffer): Frame {
    this.limit = this.frameBytesMax;
    return decodeBody(body);
  }
}

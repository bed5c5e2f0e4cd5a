/**
 * The bodies of the records in a segment file (framing and CRC come from common/record.ts).
 * Packet records are a fixed binary head plus target and data, ~23 bytes of overhead with the
 * frame, so a 100-byte packet is not doubled on flash; seq is stored relative to the segment's
 * base seq (u32), so each record stands alone once the segment header is known.
 *
 *   packet: u8 kind=1 | u8 flags | u32 seq-base | f64 ts | u8 targetLen | [u32 ttlMs] [u8 priority] | target | data
 *   acks:   u8 kind=2 | CBOR { a: ackedSeq, r: [[from, to], ...], l: lastSeq }   (r: the seqs done above
 *           ackedSeq; l: the highest seq assigned when written, so no seq is handed out twice)
 * flags: bit 0 data is raw bytes (else CBOR), bit 1 ttlMs present, bit 2 priority present.
 */
import { Decoder, Encoder } from 'cbor-x';
import type { Packet, PacketData } from '../../protocol/packet.js';

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true, copyBuffers: true });

export const RecordKind = { packet: 1, acks: 2 } as const;
const FLAG_BYTES = 1;
const FLAG_TTL = 2;
const FLAG_PRIORITY = 4;
const headBytes = 15;

export interface AckState {
  ackedSeq: number;
  /** seqs above ackedSeq already acked or dropped, as inclusive ranges, sorted */
  done: [number, number][];
  /** the highest seq assigned when the record was written (0 in records of older stores) */
  lastSeq: number;
  /** the store was created empty and no gateway has confirmed its numbering yet (see SegmentStore.renumberAbove) */
  fresh?: boolean;
}

export type DecodedRecord = { kind: 'packet'; packet: Packet } | { kind: 'acks'; acks: AckState };

export function encodePacketRecord(p: Packet, baseSeq: number): Buffer {
  const isBytes = p.data instanceof Uint8Array;
  const data = isBytes ? (p.data as Uint8Array) : cbor.encode(p.data);
  const target = Buffer.from(p.target, 'utf8');
  const hasTtl = p.ttlMs !== undefined;
  const hasPriority = p.priority !== undefined && p.priority !== 0;
  const out = Buffer.allocUnsafe(headBytes + (hasTtl ? 4 : 0) + (hasPriority ? 1 : 0) + target.length + data.length);
  out[0] = RecordKind.packet;
  out[1] = (isBytes ? FLAG_BYTES : 0) | (hasTtl ? FLAG_TTL : 0) | (hasPriority ? FLAG_PRIORITY : 0);
  out.writeUInt32BE(p.seq - baseSeq, 2);
  out.writeDoubleBE(p.ts, 6);
  out[14] = target.length;
  let off = headBytes;
  if (hasTtl) off = out.writeUInt32BE(Math.min(p.ttlMs!, 0xffffffff), off);
  if (hasPriority) off = out.writeUInt8(p.priority!, off);
  off += target.copy(out, off);
  out.set(data, off);
  return out;
}

/** Points an encoded packet body at another segment base (in place), so a record is encoded once. */
export function rebasePacketRecord(body: Buffer, seq: number, baseSeq: number): Buffer {
  body.writeUInt32BE(seq - baseSeq, 2);
  return body;
}

export function encodeAcksRecord(acks: AckState): Buffer {
  return Buffer.concat([Buffer.from([RecordKind.acks]), cbor.encode({ a: acks.ackedSeq, r: acks.done, l: acks.lastSeq, ...(acks.fresh ? { f: 1 } : {}) })]);
}

/** Decodes a record body whose CRC already matched; null if it still makes no sense (never a corrupt packet). */
export function decodeRecord(body: Buffer, baseSeq: number): DecodedRecord | null {
  try {
    if (body[0] === RecordKind.packet && body.length >= headBytes) {
      const flags = body[1]!;
      const seq = baseSeq + body.readUInt32BE(2);
      const ts = body.readDoubleBE(6);
      const targetLen = body[14]!;
      let off = headBytes;
      let ttlMs: number | undefined;
      let priority: number | undefined;
      if (flags & FLAG_TTL) {
        ttlMs = body.readUInt32BE(off);
        off += 4;
      }
      if (flags & FLAG_PRIORITY) priority = body[off++];
      if (off + targetLen > body.length) return null;
      const target = body.toString('utf8', off, off + targetLen);
      off += targetLen;
      const raw = body.subarray(off);
      const data: PacketData = flags & FLAG_BYTES ? Uint8Array.prototype.slice.call(raw) : (cborDecoder.decode(raw) as PacketData);
      const packet: Packet = { seq, target, ts, data };
      if (ttlMs !== undefined) packet.ttlMs = ttlMs;
      if (priority !== undefined) packet.priority = priority;
      return { kind: 'packet', packet };
    }
    if (body[0] === RecordKind.acks) {
      const v = cborDecoder.decode(body.subarray(1)) as { a?: unknown; r?: unknown; l?: unknown; f?: unknown };
      if (typeof v.a !== 'number' || !Array.isArray(v.r)) return null;
      const done = v.r.filter((x): x is [number, number] => Array.isArray(x) && typeof x[0] === 'number' && typeof x[1] === 'number' && x[0] <= x[1]);
      return { kind: 'acks', acks: { ackedSeq: v.a, done, lastSeq: typeof v.l === 'number' ? v.l : 0, ...(v.f === 1 ? { fresh: true } : {}) } };
    }
  } catch {
    return null;
  }
  return null;
}

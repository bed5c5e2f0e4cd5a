/**
 * The downlink queue file's records (CBOR bodies framed by common/record.ts), one message each,
 * so no body is ever larger than one message's record (a snapshot is many records):
 * - `q`: a message queued (written by `enqueue`, and for each live message by a snapshot);
 * - `e`: a message reached a final state (a verdict, an expiry, a drop);
 * - `h`: a final message kept in the history (written only by a snapshot);
 * - `o`: a message was sent to its agent (at least once): from then on only its agent's verdict
 *   ends it, never an expiry or a drop at the gateway (its consumer may have taken it); written
 *   with the next batch, not waited for (`o: true` on a snapshot's `q`).
 * `n` is the agent's order counter: queue order is ascending `n`. Delivered is never written (it
 * is `queued` again after a restart). Applying the records of a file in order rebuilds the state;
 * a record about an id already known (`q`, `h`) or no longer live (`e`) is ignored, so a
 * snapshot followed by records written while it was made reads back the same.
 */
import { Decoder, Encoder } from 'cbor-x';
import type { PacketData } from '../../protocol/packet.js';
import { isFinalState, type FinalState } from './queue.js';


export interface QueuedRecord {
  k: 'q';
  a: string;
  i: string;
  n: number;
  t: string;
  d: PacketData;
  at: number;
  x?: number;
  f?: string;
  /** sent to its agent at least once */
  o?: true;
}

export interface SentRecord {
  k: 'o';
  a: string;
  i: string;
  at: number;
}

export interface EndRecord {
  k: 'e';
  a: string;
  i: string;
  s: FinalState;
  c?: string;
  r?: string;
  at: number;
}

export interface HistoryRecord extends Omit<QueuedRecord, 'k'> {
  k: 'h';
  s: FinalState;
  c?: string;
  r?: string;
  e: number;
}

export type QueueRecord = QueuedRecord | EndRecord | HistoryRecord | SentRecord;

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true });

export function encodeRecord(r: QueueRecord): Buffer {
  return cbor.encode(r);
}


const isStr = (v: unknown): v is string => typeof v === 'string';
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const optStr = (v: unknown): boolean => v === undefined || isStr(v);
const optNum = (v: unknown): boolean => v === undefined || isNum(v);

/**
 * Decodes a body that passed its CRC; undefined for one this version does not know (skipped, as
 * dispatch-log does). Decoded from a copy: byte strings in `d` are views of what they were
 * decoded from, which must not be a whole read buffer kept alive by one message.
 */
export function decodeRecord(body: Buffer): QueueRecord | undefined {
  let v: unknown;
  try {
    v = cborDecoder.decode(Buffer.from(body));
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const r = v as Record<string, unknown>;
  if (!isStr(r.a) || !isStr(r.i) || !isNum(r.at)) return undefined;
  if (r.k === 'e') {
    if (!isStr(r.s) || !isFinalState(r.s) || !optStr(r.c) || !optStr(r.r)) return undefined;
    return r as unknown as EndRecord;
  }
  if (r.k === 'o') return r as unknown as SentRecord;
  if (r.k !== 'q' && r.k !== 'h') return undefined;
  if (r.o !== undefined && r.o !== true) return undefined;
  if (!isNum(r.n) || !isStr(r.t) || !('d' in r) || !optNum(r.x) || !optStr(r.f)) return undefined;
  if (r.k === 'h' && (!isStr(r.s) || !isFinalState(r.s) || !optStr(r.c) || !optStr(r.r) || !isNum(r.e))) return undefined;
  return r as unknown as QueuedRecord | HistoryRecord;
}

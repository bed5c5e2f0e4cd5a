import { Decoder, Encoder } from 'cbor-x';
import type { FileHandle, Files } from '../../common/files.js';
import { frameRecord, scanRecords } from '../../common/record.js';
import type { Packet, PacketData } from '../../protocol/packet.js';
import type { DeadLetter } from './store.js';

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true });

/**
 * The dead-letter area: packets the gateway rejected for good, with its reason, in one
 * append-only file of CRC-framed CBOR records (bytes stay bytes, values stay values), so that
 * they can be listed and put back in the queue.
 */
export class DeadLetterLog {
  private constructor(private readonly fh: FileHandle, private bytes: number) {}

  static async open(files: Files, path: string): Promise<DeadLetterLog> {
    // O_APPEND (as 'a+' was): each record goes to the end of the file.
    const fh = await files.open(path, { create: true, append: true });
    return new DeadLetterLog(fh, await fh.size());
  }

  async add(packet: Packet, code: string, message: string): Promise<void> {
    const body = cbor.encode({ k: 'dl', seq: packet.seq, target: packet.target, ts: packet.ts, data: packet.data, ttlMs: packet.ttlMs, priority: packet.priority, code, message });
    const rec = frameRecord(body);
    await this.fh.write(rec, this.bytes);
    await this.fh.datasync();
    this.bytes += rec.length;
  }

  async list(): Promise<DeadLetter[]> {
    const out: DeadLetter[] = [];
    // The area is small (rejected packets only): read it whole; a torn tail ends the list.
    const buf = Buffer.allocUnsafe(this.bytes);
    if (this.bytes > 0) await this.fh.read(buf, 0, this.bytes, 0);
    for (const item of scanRecords(buf).bodies) {
      try {
        const v = cborDecoder.decode(item) as { k?: string; seq: number; target: string; ts: number; data: PacketData; ttlMs?: number; priority?: number; code: string; message: string };
        if (v.k !== 'dl') continue;
        const packet: Packet = { seq: v.seq, target: v.target, ts: v.ts, data: v.data };
        if (v.ttlMs !== undefined && v.ttlMs !== null) packet.ttlMs = v.ttlMs;
        if (v.priority !== undefined && v.priority !== null) packet.priority = v.priority;
        out.push({ packet, code: v.code, message: v.message });
      } catch {
        /* a damaged record: skip it */
      }
    }
    return out;
  }

  async clear(): Promise<void> {
    await this.fh.truncate(0);
    await this.fh.datasync();
    this.bytes = 0;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

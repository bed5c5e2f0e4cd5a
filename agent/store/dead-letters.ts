import { dirname } from 'node:path';
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
 *
 * `bytes` is where the last whole record ends, and nothing past it is ever trusted. A record is
 * written whole and synced, or `add` rejects: then the file is cut back to `bytes`; if that cut
 * fails too, the next `add` or `clear` cuts it first (and rejects if it still cannot), so a new
 * record never lands behind a torn one, which would hide it from every reader.
 */
export class DeadLetterLog {
  /** a failed write could not be cut back: cut to `bytes` before the next one */
  private needsCut = false;

  private constructor(private readonly fh: FileHandle, private bytes: number) {}

  static async open(files: Files, path: string): Promise<DeadLetterLog> {
    // O_APPEND (as 'a+' was): each record goes to the end of the file.
    const fh = await files.open(path, { create: true, append: true });
    try {
      // A torn tail (a crash mid-write) is cut now: a record appended after it would never be read.
      const size = await fh.size();
      const buf = Buffer.allocUnsafe(size);
      for (let off = 0; off < size; ) {
        const n = await fh.read(buf, off, size - off, off);
        if (n === 0) throw Object.assign(new Error(`dead letters: ${path} ended at ${off} of ${size} bytes while read`), { code: 'EIO' });
        off += n;
      }
      const { validBytes } = scanRecords(buf);
      if (validBytes < size) {
        await fh.truncate(validBytes);
        await fh.datasync();
      }
      // The file may be new: its directory entry must survive a power cut.
      await files.syncDir(dirname(path));
      return new DeadLetterLog(fh, validBytes);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
  }

  async add(packet: Packet, code: string, message: string): Promise<void> {
    const body = cbor.encode({ k: 'dl', seq: packet.seq, target: packet.target, ts: packet.ts, data: packet.data, ttlMs: packet.ttlMs, priority: packet.priority, code, message });
    const rec = frameRecord(body);
    await this.cutIfNeeded();
    try {
      await this.fh.writeAll(rec, null);
      await this.fh.datasync();
    } catch (err) {
      await this.fh.truncate(this.bytes).catch(() => (this.needsCut = true));
      throw err;
    }
    this.bytes += rec.length;
  }

  private async cutIfNeeded(): Promise<void> {
    if (!this.needsCut) return;
    await this.fh.truncate(this.bytes);
    this.needsCut = false;
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
    this.bytes = 0;
    this.needsCut = false;
    await this.fh.datasync();
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

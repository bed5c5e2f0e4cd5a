/**
 * The skeleton store: one append-only log of CRC-framed records plus an atomically replaced
 * ack checkpoint. Written by hand because no library gives group-committed, CRC-checked appends
 * with a torn-tail cut and cumulative acks in a few hundred lines. It keeps un-acked packets in
 * memory as well, which bounds it to backlogs that fit in RAM; the segmented store (issue 3)
 * replaces it behind the same PacketStore interface.
 */
import { mkdir, open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Decoder, Encoder } from 'cbor-x';
import { frameRecord, scanRecords } from '../../common/record.js';
import { writeFileAtomic } from '../../common/durable-file.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { dataBytes, dataToJson, type NewPacket, type Packet, type PacketData } from '../../protocol/packet.js';
import type { Log } from '../../common/log.js';
import { silentLog } from '../../common/log.js';
import type { PacketStore, StoreStats, SyncPolicy } from './store.js';

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true });

export interface LogStoreOptions {
  dir: string;
  sync?: SyncPolicy;
  /** with sync `batch`: how long an append may wait for others to share its sync */
  batchWindowMs?: number;
  /** the log is emptied once everything in it is acked and it has grown past this */
  compactBytesMin?: number;
  /** backlog size at which appends are refused with STORE_FULL (capacity policies come with the segmented store) */
  bytesMax?: number;
  log?: Log;
}

interface Pending {
  packet: Packet;
  resolve: (p: Packet) => void;
  reject: (err: unknown) => void;
}

export class LogStore implements PacketStore {
  private readonly opts: Required<Omit<LogStoreOptions, 'log'>> & { log: Log };
  private fh!: FileHandle;
  private logBytes = 0;
  private backlog: { packet: Packet; bytes: number }[] = [];
  private backlogBytes = 0;
  /** bytes of appends not yet flushed, estimated from their data; counted toward bytesMax */
  private pendingBytes = 0;
  private lastSeq = 0;
  private ackedSeq = 0;
  private checkpointedSeq = 0;
  private pending: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private checkpointing: Promise<void> | null = null;
  private closed = false;
  private listeners: (() => void)[] = [];
  private counters = { appended: 0, acked: 0, deadLetters: 0, syncs: 0 };

  private constructor(opts: LogStoreOptions) {
    this.opts = { sync: 'always', batchWindowMs: 10, compactBytesMin: 4 * 1024 * 1024, bytesMax: Number.MAX_SAFE_INTEGER, log: silentLog, ...opts };
  }

  static async open(opts: LogStoreOptions): Promise<LogStore> {
    const store = new LogStore(opts);
    await store.recover();
    return store;
  }

  private get logPath(): string { return join(this.opts.dir, 'packets.log'); }
  private get checkpointPath(): string { return join(this.opts.dir, 'acked.json'); }
  private get deadLetterPath(): string { return join(this.opts.dir, 'dead-letters.jsonl'); }

  private async recover(): Promise<void> {
    await mkdir(this.opts.dir, { recursive: true });
    this.ackedSeq = await this.readCheckpoint();
    this.checkpointedSeq = this.ackedSeq;
    this.fh = await open(this.logPath, 'a+');
    const buf = await readFile(this.logPath);
    const { bodies, validBytes } = scanRecords(buf);
    if (validBytes < buf.length) {
      // A torn tail: the bytes of an append that never resolved. Cut it so new records follow intact ones.
      this.opts.log.warn('store: cut a torn tail', { bytes: buf.length - validBytes });
      await this.fh.truncate(validBytes);
      await this.fh.datasync();
    }
    this.logBytes = validBytes;
    this.lastSeq = this.ackedSeq;
    for (const body of bodies) {
      const p = decodePacket(body);
      if (p === null) continue;
      if (p.seq > this.lastSeq) this.lastSeq = p.seq;
      if (p.seq > this.ackedSeq) {
        this.backlog.push({ packet: p, bytes: body.length });
        this.backlogBytes += body.length;
      }
    }
  }

  private async readCheckpoint(): Promise<number> {
    try {
      const parsed: unknown = JSON.parse(await readFile(this.checkpointPath, 'utf8'));
      const seq = (parsed as { ackedSeq?: unknown }).ackedSeq;
      if (typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0) return seq;
      this.opts.log.warn('store: ack checkpoint unreadable; resending from the start of the log');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.opts.log.warn('store: ack checkpoint unreadable', { err });
    }
    return 0;
  }

  append(input: NewPacket): Promise<Packet> {
    if (this.closed) return Promise.reject(new FerryError(ErrorCode.STORE_CLOSED, 'store is closed'));
    if (this.backlogBytes + this.pendingBytes >= this.opts.bytesMax) {
      return Promise.reject(new FerryError(ErrorCode.STORE_FULL, `store holds ${this.backlogBytes} bytes not yet acked; the limit is ${this.opts.bytesMax}`));
    }
    const packet: Packet = { seq: ++this.lastSeq, target: input.target, ts: input.ts, data: input.data };
    this.pendingBytes += dataBytes(packet.data) + packet.target.length;
    return new Promise<Packet>((resolve, reject) => {
      this.pending.push({ packet, resolve, reject });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushing || this.flushTimer) return;
    const delayMs = this.opts.sync === 'batch' ? this.opts.batchWindowMs : 0;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      this.flushing = this.flush().finally(() => {
        this.flushing = null;
        if (this.pending.length > 0) this.scheduleFlush();
      });
    }, delayMs);
  }

  /** Group commit: every append queued so far goes out in one write and one fdatasync. */
  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    if (batch.length === 0) return;
    const records = batch.map((p) => frameRecord(encodePacket(p.packet)));
    try {
      const buf = Buffer.concat(records);
      await this.fh.write(buf, 0, buf.length, null);
      if (this.opts.sync !== 'none') {
        await this.fh.datasync();
        this.counters.syncs++;
      }
      this.logBytes += buf.length;
    } catch (err) {
      // Cut whatever part of the batch reached the file, so later records never follow a torn one.
      await this.fh.truncate(this.logBytes).catch(() => undefined);
      const failure = new FerryError(ErrorCode.STORE_IO, `store write failed: ${(err as Error).message}`, { cause: err });
      for (const p of batch) p.reject(failure);
      return;
    }
    for (const [i, p] of batch.entries()) {
      this.backlog.push({ packet: p.packet, bytes: records[i]!.length });
      this.backlogBytes += records[i]!.length;
      this.counters.appended++;
      p.resolve(p.packet);
    }
    for (const l of this.listeners) l();
  }

  readAfter(seq: number, countMax: number): Packet[] {
    // Backlog is sorted by seq; find the first packet above `seq`.
    let lo = 0;
    let hi = this.backlog.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.backlog[mid]!.packet.seq <= seq) lo = mid + 1;
      else hi = mid;
    }
    return this.backlog.slice(lo, lo + countMax).map((e) => e.packet);
  }

  async ack(seq: number): Promise<void> {
    if (this.closed) throw new FerryError(ErrorCode.STORE_CLOSED, 'store is closed');
    if (seq <= this.ackedSeq) return;
    this.ackedSeq = Math.min(seq, this.lastSeq);
    let drop = 0;
    while (drop < this.backlog.length && this.backlog[drop]!.packet.seq <= this.ackedSeq) {
      this.backlogBytes -= this.backlog[drop]!.bytes;
      drop++;
    }
    this.backlog.splice(0, drop);
    this.counters.acked += drop;
    await this.checkpoint();
  }

  /** Writes the ack position; calls that arrive while one is running share the next write. */
  private async checkpoint(): Promise<void> {
    while (this.checkpointing) await this.checkpointing;
    if (this.checkpointedSeq >= this.ackedSeq) return;
    this.checkpointing = (async () => {
      const seq = this.ackedSeq;
      await writeFileAtomic(this.checkpointPath, JSON.stringify({ ackedSeq: seq }));
      this.checkpointedSeq = seq;
      await this.maybeCompact();
    })().finally(() => {
      this.checkpointing = null;
    });
    await this.checkpointing;
  }

  /** Empties the log once all of it is acked (and checkpointed); the checkpoint keeps lastSeq. */
  private async maybeCompact(): Promise<void> {
    if (this.logBytes < this.opts.compactBytesMin || this.backlog.length > 0) return;
    if (this.pending.length > 0 || this.flushing || this.checkpointedSeq < this.lastSeq) return;
    await this.fh.truncate(0);
    await this.fh.datasync();
    this.logBytes = 0;
  }

  async deadLetter(packet: Packet, code: string, message: string): Promise<void> {
    if (this.closed) throw new FerryError(ErrorCode.STORE_CLOSED, 'store is closed');
    const fh = await open(this.deadLetterPath, 'a');
    try {
      const line = JSON.stringify({ seq: packet.seq, target: packet.target, ts: packet.ts, code, message, data: dataToJson(packet.data) });
      await fh.write(`${line}\n`);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    this.counters.deadLetters++;
  }

  onAppend(listener: () => void): void {
    this.listeners.push(listener);
  }

  advanceSeq(seq: number): void {
    if (seq > this.lastSeq) this.lastSeq = seq;
  }

  stats(): StoreStats {
    return { ...this.counters, lastSeq: this.lastSeq, ackedSeq: this.ackedSeq, backlogPackets: this.backlog.length + this.pending.length };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
      this.flushing = this.flush().finally(() => {
        this.flushing = null;
      });
    }
    while (this.flushing) await this.flushing;
    if (this.pending.length > 0) await this.flush();
    while (this.checkpointing) await this.checkpointing;
    this.closed = true;
    await this.fh.close();
  }
}

function encodePacket(p: Packet): Buffer {
  return cbor.encode({ seq: p.seq, target: p.target, ts: p.ts, data: p.data });
}

function decodePacket(body: Buffer): Packet | null {
  try {
    const v = cborDecoder.decode(body) as Partial<Packet>;
    if (typeof v.seq !== 'number' || typeof v.target !== 'string' || typeof v.ts !== 'number') return null;
    return { seq: v.seq, target: v.target, ts: v.ts, data: v.data as PacketData };
  } catch {
    return null;
  }
}

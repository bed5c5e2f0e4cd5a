/**
 * The downlink queue's file: an append-only log of CRC-framed records (common/record.ts) with group
 * commit and compaction, as gateway/dispatch-log.ts keeps (read its top comment for why by hand).
 * It knows nothing of messages: it writes record bodies, hands them back at open, and asks its
 * owner for a snapshot when it compacts.
 *
 * Group commit. `append` adds an entry (a few record bodies, and `done`) to the next batch; every
 * entry that arrives while a write is in progress goes in the next single write, across agents.
 * The handle is O_DSYNC: a write resolves once durable. `done` is called synchronously once the
 * batch is durable (before the next batch or a compaction starts, so a snapshot always holds what
 * was written before it), or with the error if the write failed.
 *
 * Failures. A batch is written whole or not at all: on failure the file is cut back to the end of
 * the last batch that succeeded (`fileBytes`), the cut is synced, and only then is every entry of
 * the batch failed; so a rejected record is not in the file when its caller hears so, unless the
 * cut failed too and a power cut follows before the next batch. If the cut fails, or a compaction
 * does, the handle is dropped and the next batch first reopens the file by its path and cuts it
 * back to `fileBytes` (never re-reading it: memory already holds every record up to there, and
 * what follows belongs to rejected batches). An entry marked `retry` (a record nobody waits for,
 * such as an expiry) is not failed: it goes again with the next batch, and a snapshot makes it moot.
 *
 * Compaction: once the file has grown past `compactBytes` and by at least the last snapshot's
 * size (or, after a failed compaction, its size then), the owner's snapshot (record bodies, each within recordBodyBytesMax) is written in chunks
 * to a temporary file, synced, renamed over the log, and the directory synced.
 */
import { join } from 'node:path';
import { mkdirDurable } from '../../common/durable-file.js';
import type { FileHandle, Files } from '../../common/files.js';
import type { Log } from '../../common/log.js';
import { frameRecord } from '../../common/record.js';
import { scanRecordFile } from '../../common/record-file.js';

export interface JournalOptions {
  dir: string;
  fileName: string;
  files: Files;
  log: Log;
  compactBytes: number;
  compactGrowthRatio: number;
  recordBodyBytesMax: number;
  ioChunkBytes: number;
  /**
   * Calls `fn` a while later: records kept from a failed write (`retry`) are written again then,
   * even if nothing else is appended (a full queue appends nothing, and a DOWN frame waits for its
   * sent records: simulator seed 4104022738 stalled for good). Absent: only the next append retries.
   */
  later?: (fn: () => void) => void;
}

export interface JournalEntry {
  bodies: Buffer[];
  /** called once the entry is durable (no argument) or its write failed (never for a `retry` entry) */
  done?: (err?: unknown) => void;
  /** on a failed write, keep it for the next batch instead of failing it */
  retry?: boolean;
}

export class Journal {
  private fh: FileHandle | undefined;
  /** where the last batch that succeeded ends: the file is never trusted past it */
  private fileBytes = 0;
  private snapshotBytes = 0;
  private pending: JournalEntry[] = [];
  /** `retry` entries of failed batches, written first in the next one */
  private carried: JournalEntry[] = [];
  private retryArmed = false;
  private flushing: Promise<void> | null = null;
  syncs = 0;
  compactions = 0;

  private constructor(private readonly o: JournalOptions, private readonly snapshot: () => Iterable<Buffer>) {}

  /**
   * Opens the log (creating it), hands every valid record body to `learn` in order, cuts a torn
   * tail. `snapshot` gives the owner's state as record bodies when the log is compacted; it must
   * capture that state synchronously when called (the bodies may be produced lazily).
   */
  static async open(o: JournalOptions, learn: (body: Buffer) => void, snapshot: () => Iterable<Buffer>): Promise<Journal> {
    const j = new Journal(o, snapshot);
    await mkdirDurable(o.files, o.dir);
    await o.files.unlink(j.tmpPath).catch(() => undefined); // a compaction's leftover, never read
    const fh = await o.files.open(j.path, { create: true, append: true, dsync: true });
    try {
      const size = await fh.size();
      const valid = await j.scan(fh, size, learn);
      if (valid < size) {
        o.log.warn('downlink queue: cut a torn tail', { bytes: size - valid });
        await fh.truncate(valid);
        await fh.datasync();
      }
      await o.files.syncDir(o.dir);
      j.fileBytes = valid;
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    j.fh = fh;
    return j;
  }

  get path(): string {
    return join(this.o.dir, this.o.fileName);
  }

  private get tmpPath(): string {
    return `${this.path}.tmp`;
  }

  /** Bytes of the log up to its last whole record. */
  get bytes(): number {
    return this.fileBytes;
  }

  append(entry: JournalEntry): void {
    this.pending.push(entry);
    if (!this.flushing) this.flushing = this.flushLoop();
  }

  /** Resolves once everything appended so far was written (or failed). */
  async flushed(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  async close(): Promise<void> {
    // Records kept from a failed write get one more try.
    if (this.carried.length > 0) this.append({ bodies: [] });
    await this.flushed();
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }

  /** Hands over the file's valid records (common/record-file.ts: read again before a CRC failure counts); returns where the last one ends. */
  private scan(fh: FileHandle, size: number, learn: (body: Buffer) => void): Promise<number> {
    return scanRecordFile(fh, size, { ...this.o, what: `downlink queue: ${this.path}` }, learn);
  }

  private async flushLoop(): Promise<void> {
    // Yield once so what arrives in the same tick shares the sync.
    await new Promise((r) => setImmediate(r));
    while (this.pending.length > 0) {
      const batch: JournalEntry[] = [];
      const framed: Buffer[] = [];
      for (const e of [...this.carried, ...this.pending]) {
        try {
          framed.push(...e.bodies.map((b) => frameRecord(b, this.o.recordBodyBytesMax)));
          batch.push(e);
        } catch (err) {
          // A body no reader would accept (RECORD_TOO_LARGE) fails alone, never again, and never the batch.
          e.done?.(err);
        }
      }
      this.carried = [];
      this.pending = [];
      try {
        const buf = Buffer.concat(framed);
        if (buf.length > 0) await this.write(buf);
      } catch (err) {
        for (const e of batch) {
          if (e.retry) this.carried.push(e);
          else e.done?.(err);
        }
        if (this.carried.length > 0 && !this.retryArmed && this.o.later) {
          this.retryArmed = true;
          this.o.later(() => {
            this.retryArmed = false;
            if (this.carried.length > 0) this.append({ bodies: [] });
          });
        }
        continue;
      }
      for (const e of batch) e.done?.();
      if (this.fileBytes > this.o.compactBytes && this.fileBytes - this.snapshotBytes >= this.o.compactGrowthRatio * this.snapshotBytes) {
        await this.compact().catch((err: unknown) => {
          this.drop();
          // Tried again once the file has grown as much again, not on every batch.
          this.snapshotBytes = Math.max(this.snapshotBytes, this.fileBytes);
          this.o.log.error('downlink queue: compaction failed', { err });
        });
      }
    }
    this.flushing = null;
  }

  /** Writes `buf` whole after the last good batch, or cuts the file back to it (durably) and throws. */
  private async write(buf: Buffer): Promise<void> {
    if (!this.fh) await this.reopen();
    const fh = this.fh!;
    try {
      await fh.writeAll(buf, null);
    } catch (err) {
      try {
        await fh.truncate(this.fileBytes);
        await fh.datasync();
      } catch (cutErr) {
        this.o.log.error('downlink queue: could not cut a failed write back; reopening before the next one', { err: cutErr });
        this.drop();
      }
      throw err;
    }
    this.syncs++;
    this.fileBytes += buf.length;
  }

  /** Opens the file at the path again and cuts it back to `fileBytes`, durably (see the top comment). */
  private async reopen(): Promise<void> {
    const fh = await this.o.files.open(this.path, { create: true, append: true, dsync: true });
    try {
      const size = await fh.size();
      let keep = this.fileBytes;
      if (size < keep) {
        // Somebody else cut it: keep what is whole, and say so.
        keep = await this.scan(fh, size, () => undefined);
        this.o.log.error('downlink queue: the file is shorter than what was written to it', { expected: this.fileBytes, bytes: size, kept: keep });
      }
      if (size > keep) {
        await fh.truncate(keep);
        await fh.datasync();
      }
      await this.o.files.syncDir(this.o.dir);
      this.fileBytes = keep;
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    this.fh = fh;
  }

  private drop(): void {
    const fh = this.fh;
    this.fh = undefined;
    void fh?.close().catch(() => undefined);
  }

  private async compact(): Promise<void> {
    const records = this.snapshot();
    const out = await this.o.files.open(this.tmpPath, { create: true, truncate: true });
    let bytes = 0;
    try {
      let parts: Buffer[] = [];
      let partBytes = 0;
      const flush = async (): Promise<void> => {
        const buf = Buffer.concat(parts);
        parts = [];
        partBytes = 0;
        await out.writeAll(buf, bytes);
        bytes += buf.length;
      };
      for (const body of records) {
        const rec = frameRecord(body, this.o.recordBodyBytesMax);
        parts.push(rec);
        partBytes += rec.length;
        if (partBytes >= this.o.ioChunkBytes) await flush();
      }
      if (partBytes > 0) await flush();
      await out.datasync();
    } catch (err) {
      await out.close().catch(() => undefined);
      await this.o.files.unlink(this.tmpPath).catch(() => undefined);
      throw err;
    }
    await out.close();
    // The old handle names the file the rename replaces: never write to it again.
    this.drop();
    await this.o.files.rename(this.tmpPath, this.path);
    // From here the path names the snapshot, whatever fails next: a reopen cuts it back to this.
    this.fileBytes = bytes;
    this.snapshotBytes = bytes;
    this.carried = []; // the snapshot holds what they said
    await this.o.files.syncDir(this.o.dir);
    this.compactions++;
    this.fh = await this.o.files.open(this.path, { create: true, append: true, dsync: true });
    this.o.log.info('downlink queue: compacted', { bytes });
  }
}

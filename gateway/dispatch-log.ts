/**
 * The gateway's durable record of dispatch: per agent, the highest seq whose handler succeeded.
 * An ack waits for its record ("write first, ack second"), so a packet the agent resends after a
 * gateway crash is recognised and not dispatched twice. Written by hand: an append-only file of
 * CRC-framed records with group commit (one fdatasync for every record that arrived together,
 * across all sessions) is a few dozen lines, where a database would add a sync per transaction.
 * The file is compacted into a snapshot (write + rename) once it grows past a bound.
 */
import { mkdir, open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Decoder, Encoder } from 'cbor-x';
import { frameRecord, scanRecords } from '../common/record.js';
import { syncDir } from '../common/durable-file.js';
import type { Log } from '../common/log.js';

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true });

export class DispatchLog {
  private readonly dispatched = new Map<string, number>();
  private fh!: FileHandle;
  private fileBytes = 0;
  private pending: { agent: string; seq: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private flushing: Promise<void> | null = null;
  syncs = 0;

  private constructor(private readonly dir: string, private readonly compactBytes: number, private readonly log: Log) {}

  static async open(dir: string, log: Log, compactBytes = 8 * 1024 * 1024): Promise<DispatchLog> {
    const d = new DispatchLog(dir, compactBytes, log);
    await mkdir(dir, { recursive: true });
    const path = d.path;
    let buf: Buffer;
    try {
      buf = await readFile(path);
    } catch {
      buf = Buffer.alloc(0);
    }
    const { bodies, validBytes } = scanRecords(buf);
    for (const body of bodies) {
      try {
        const { a, s } = cborDecoder.decode(body) as { a: string; s: number };
        if (typeof a === 'string' && typeof s === 'number' && s > (d.dispatched.get(a) ?? 0)) d.dispatched.set(a, s);
      } catch {
        /* a record that passed its CRC but does not decode was written by another version: skip it */
      }
    }
    d.fh = await open(path, 'a+');
    if (validBytes < buf.length) {
      log.warn('dispatch log: cut a torn tail', { bytes: buf.length - validBytes });
      await d.fh.truncate(validBytes);
      await d.fh.datasync();
    }
    d.fileBytes = validBytes;
    return d;
  }

  private get path(): string {
    return join(this.dir, 'dispatched.log');
  }

  /** The highest seq of `agent` recorded as dispatched, 0 if none. */
  get(agent: string): number {
    return this.dispatched.get(agent) ?? 0;
  }

  /** Resolves once `seq` is durably recorded for `agent`. */
  record(agent: string, seq: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ agent, seq, resolve, reject });
      if (!this.flushing) this.flushing = this.flushLoop();
    });
  }

  private async flushLoop(): Promise<void> {
    // Yield once so records from sessions served in the same tick share the sync.
    await new Promise((r) => setImmediate(r));
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      const latest = new Map<string, number>();
      for (const p of batch) latest.set(p.agent, Math.max(latest.get(p.agent) ?? 0, p.seq));
      const buf = Buffer.concat([...latest].map(([a, s]) => frameRecord(cbor.encode({ a, s }))));
      try {
        await this.fh.write(buf, 0, buf.length, null);
        await this.fh.datasync();
        this.syncs++;
        this.fileBytes += buf.length;
      } catch (err) {
        await this.fh.truncate(this.fileBytes).catch(() => undefined);
        for (const p of batch) p.reject(err);
        continue;
      }
      for (const [a, s] of latest) if (s > this.get(a)) this.dispatched.set(a, s);
      for (const p of batch) p.resolve();
      if (this.fileBytes > this.compactBytes) await this.compact();
    }
    this.flushing = null;
  }

  /** Rewrites the file as one record per agent. */
  private async compact(): Promise<void> {
    const tmp = `${this.path}.tmp`;
    const buf = Buffer.concat([...this.dispatched].map(([a, s]) => frameRecord(cbor.encode({ a, s }))));
    const out = await open(tmp, 'w');
    try {
      await out.write(buf, 0, buf.length, 0);
      await out.datasync();
    } finally {
      await out.close();
    }
    await rename(tmp, this.path);
    await syncDir(this.dir);
    await this.fh.close();
    this.fh = await open(this.path, 'a+');
    this.fileBytes = buf.length;
    this.log.info('dispatch log: compacted', { agents: this.dispatched.size, bytes: buf.length });
  }

  async close(): Promise<void> {
    while (this.flushing) await this.flushing;
    await this.fh.close();
  }
}

/**
 * The gateway's durable record of dispatch: per agent, which seqs' handlers succeeded, as a floor
 * (every seq up to it is done) plus ranges above it (targets do not wait for each other, so
 * dispatch has gaps while a target is failing).
 * An ack waits for its record ("write first, ack second"), so a packet the agent resends after a
 * gateway crash is recognised and not dispatched twice. Written by hand: an append-only file of
 * CRC-framed records with group commit (one fdatasync for every record that arrived together,
 * across all sessions) is a few dozen lines, where a database would add a sync per transaction.
 * The file is compacted into a snapshot (write + rename) once it grows past a bound.
 */
import { join } from 'node:path';
import { Decoder, Encoder } from 'cbor-x';
import { frameRecord, scanRecords } from '../common/record.js';
import { RangeSet } from '../common/range-set.js';
import type { SeqRange } from '../protocol/frames.js';
import { writeFileAtomic } from '../common/durable-file.js';
import type { FileHandle, Files } from '../common/files.js';
import { realFiles } from '../common/real-files.js';
import type { Log } from '../common/log.js';

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true });

/** One agent's dispatched seqs: everything <= floor, plus `above`. */
class AgentDispatch {
  floor = 0;
  readonly above = new RangeSet();

  add(from: number, to: number): void {
    if (to <= this.floor) return;
    this.above.add(Math.max(from, this.floor + 1), to);
    const end = this.above.takePrefix(this.floor + 1);
    if (end !== null) this.floor = end;
  }

  raiseFloor(seq: number): void {
    if (seq <= this.floor) return;
    this.floor = seq;
    this.above.dropThrough(seq);
    const end = this.above.takePrefix(seq + 1);
    if (end !== null) this.floor = end;
  }

  has(seq: number): boolean {
    return seq <= this.floor || this.above.has(seq);
  }
}

/** A log record: `s` raises the floor (also the only form version 1 wrote), `r` adds dispatched ranges. */
interface LogRecord { a: string; s?: number; r?: SeqRange[] }

export interface DispatchLogOptions {
  /** the file is rewritten as a snapshot once it grows past this (default 8 MiB) */
  compactBytes?: number;
  /** where the log lives; default realFiles */
  files?: Files;
}

/** Appends whose write returns once durable (each group commit is one write call, as in the agent's store). */
function openAppendDsync(files: Files, path: string): Promise<FileHandle> {
  return files.open(path, { create: true, append: true, dsync: true });
}

export class DispatchLog {
  private readonly dispatched = new Map<string, AgentDispatch>();
  private fh!: FileHandle;
  private fileBytes = 0;
  private pending: { agent: string; seq: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  /** floors raised since the last write; they ride the next write, nobody waits for them */
  private floors = new Map<string, number>();
  private flushing: Promise<void> | null = null;
  syncs = 0;

  private constructor(private readonly dir: string, private readonly compactBytes: number, private readonly log: Log, private readonly files: Files) {}

  static async open(dir: string, log: Log, opts: DispatchLogOptions = {}): Promise<DispatchLog> {
    const files = opts.files ?? realFiles;
    const d = new DispatchLog(dir, opts.compactBytes ?? 8 * 1024 * 1024, log, files);
    await files.mkdir(dir);
    const path = d.path;
    let buf: Buffer;
    try {
      buf = await files.readFile(path);
    } catch {
      buf = Buffer.alloc(0);
    }
    const { bodies, validBytes } = scanRecords(buf);
    for (const body of bodies) {
      try {
        d.apply(cborDecoder.decode(body) as LogRecord);
      } catch {
        /* a record that passed its CRC but does not decode was written by another version: skip it */
      }
    }
    d.fh = await openAppendDsync(files, path);
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

  private apply(rec: LogRecord): void {
    if (typeof rec !== 'object' || rec === null || typeof rec.a !== 'string') return;
    const d = this.agent(rec.a);
    if (typeof rec.s === 'number') d.raiseFloor(rec.s);
    if (Array.isArray(rec.r)) for (const [f, t] of rec.r) if (typeof f === 'number' && typeof t === 'number') d.add(f, t);
  }

  private agent(id: string): AgentDispatch {
    let d = this.dispatched.get(id);
    if (!d) this.dispatched.set(id, (d = new AgentDispatch()));
    return d;
  }

  /** Every seq of `agent` up to this one is done; 0 if none. */
  floor(agent: string): number {
    return this.dispatched.get(agent)?.floor ?? 0;
  }

  /** Seqs above the floor recorded as dispatched (at most `rangesMax` ranges, lowest first). */
  ranges(agent: string, rangesMax: number): SeqRange[] {
    return this.dispatched.get(agent)?.above.toArray(rangesMax) ?? [];
  }

  /** Ranges above the floor, how many. */
  gaps(agent: string): number {
    return this.dispatched.get(agent)?.above.size ?? 0;
  }

  has(agent: string, seq: number): boolean {
    return this.dispatched.get(agent)?.has(seq) ?? false;
  }

  /**
   * The agent has let go of every seq up to `seq` (dispatched, rejected for good, expired), so
   * none of them will come again: the floor moves up and the gaps below it are forgotten. Not
   * waited for: a floor lost in a crash is raised again by the agent's next HELLO.
   */
  raiseFloor(agent: string, seq: number): void {
    if (seq <= this.floor(agent)) return;
    this.agent(agent).raiseFloor(seq);
    this.floors.set(agent, Math.max(seq, this.floors.get(agent) ?? 0));
  }

  /** Resolves once `seq` is durably recorded as dispatched for `agent`. */
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
      const perAgent = new Map<string, RangeSet>();
      for (const p of batch) {
        let set = perAgent.get(p.agent);
        if (!set) perAgent.set(p.agent, (set = new RangeSet()));
        set.add(p.seq);
      }
      const records: LogRecord[] = [...perAgent].map(([a, set]) => ({ a, r: set.toArray() }));
      const floors = this.floors;
      this.floors = new Map();
      for (const [a, s] of floors) records.push({ a, s });
      const buf = Buffer.concat(records.map((r) => frameRecord(cbor.encode(r))));
      try {
        // O_DSYNC: the write returns once the data is durable, one trip to the thread pool.
        await this.fh.write(buf, null);
        this.syncs++;
        this.fileBytes += buf.length;
      } catch (err) {
        await this.fh.truncate(this.fileBytes).catch(() => undefined);
        for (const [a, s] of floors) this.floors.set(a, Math.max(s, this.floors.get(a) ?? 0));
        for (const p of batch) p.reject(err);
        continue;
      }
      for (const r of records) this.apply(r);
      for (const p of batch) p.resolve();
      if (this.fileBytes > this.compactBytes) {
        // A failed compaction costs only file size: keep appending to the old file, try again later.
        await this.compact().catch((err: unknown) => this.log.error('dispatch log: compaction failed', { err }));
      }
    }
    this.flushing = null;
  }

  /** Rewrites the file as one record per agent. */
  private async compact(): Promise<void> {
    const buf = Buffer.concat([...this.dispatched].map(([a, d]) => frameRecord(cbor.encode({ a, s: d.floor, r: d.above.toArray() }))));
    await writeFileAtomic(this.files, this.path, buf);
    await this.fh.close();
    this.fh = await openAppendDsync(this.files, this.path);
    this.fileBytes = buf.length;
    this.log.info('dispatch log: compacted', { agents: this.dispatched.size, bytes: buf.length });
  }

  async close(): Promise<void> {
    while (this.flushing) await this.flushing;
    await this.fh.close();
  }
}

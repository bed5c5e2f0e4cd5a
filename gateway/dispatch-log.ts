/**
 * The gateway's durable record of dispatch: per agent, which seqs' handlers succeeded, as a floor
 * (every seq up to it is done) plus ranges above it (targets do not wait for each other, so
 * dispatch has gaps while a target is failing).
 * An ack waits for its record ("write first, ack second"), so a packet the agent resends after a
 * gateway crash is recognised and not dispatched twice. Written by hand: an append-only file of
 * CRC-framed records with group commit (one O_DSYNC write for every record that arrived together,
 * across all sessions) is a few dozen lines, where a database would add a sync per transaction.
 * The file is compacted into a snapshot (write + rename) once it has grown past `compactBytes`
 * and by at least the size of the last snapshot: so the bytes rewritten are at most the bytes
 * appended since (plus compactBytes), whatever the state's size. (It used to compact on size
 * alone: a state bigger than compactBytes was rewritten whole on every group commit, and an
 * honest agent's ack waited for it: 2.5 ms became 179 ms.) Every record, of a batch or of a
 * snapshot, is split so that its body fits what the reader accepts (common/record.ts: a longer
 * one would be read back as a torn tail, losing every record after it); the snapshot is written
 * and the file read in chunks, so neither needs the whole file in one buffer.
 *
 * Failures. A batch is written whole or not at all (`writeAll`); on failure the file is cut back
 * to the end of the last whole record and every record of the batch is rejected, and memory only
 * ever learns a record after its write resolved. If the cut fails too, or a compaction fails
 * anywhere, the handle is dropped and the next batch first reopens the file by its path: it
 * reads it, cuts whatever follows the last valid record, learns the valid records it holds
 * (whole records of a rejected batch may be among them: their handlers did run, so knowing them
 * only saves a duplicate) and fsyncs the directory, so that it appends to the file a power cut
 * would keep. A batch that finds the file unusable is rejected; the next one tries again. So a
 * failed compaction or reopen never leaves a closed handle in place.
 *
 * Bounds (`admit`). Nothing here is ever forgotten: forgetting a floor or a range would let a
 * resent packet be dispatched a second time. Instead, the session asks `admit` before it hands a
 * packet to a handler, and it refuses:
 * - a new agent ID once `agentsMax` agents are known (`AGENTS_MAX`): memory and snapshot stay at
 *   most agentsMax × (ID + floor + ranges); known agents are always admitted;
 * - a seq that could open a new range above the floor once the agent has `rangesPerAgentMax`
 *   (`TARGET_BUSY`, retryable): a seq that extends a range or the floor, or was admitted before,
 *   is still admitted, so the stuck target's own resends, which close the gaps, always get through.
 * Records of admitted packets are always taken (their handler ran), so an admitted seq that could
 * open a range is counted against the bound from admission until it is recorded, until it can no
 * longer open one (a neighbour was recorded), or until the floor passes it: ranges + those ≤
 * rangesPerAgentMax, so the bound holds however many packets are in flight, in however many
 * sessions. (It used to count recorded ranges only, so packets in flight in many sessions could
 * pass it without limit.) TARGET_BUSY rather than ending the session: an honest agent whose
 * target fails meets the same bound, and its other targets' packets that fill gaps still flow;
 * a hostile one gains nothing by pushing, since the bound is never passed.
 * Memory: agentsMax × rangesPerAgentMax is a bound on what a file record must hold, not a size
 * to provision for: a few hundred agents at the gap bound take tens of MiB.
 */
import { join } from 'node:path';
import { Decoder, Encoder } from 'cbor-x';
import { frameRecord, recordBodyBytesMax } from '../common/record.js';
import { scanRecordFile } from '../common/record-file.js';
import { RangeSet } from '../common/range-set.js';
import type { SeqRange } from '../protocol/frames.js';
import { mkdirDurable } from '../common/durable-file.js';
import type { FileHandle, Files } from '../common/files.js';
import { realFiles } from '../common/real-files.js';
import type { Log } from '../common/log.js';
import { ErrorCode } from '../protocol/errors.js';

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true });

/** One agent's dispatched seqs: everything <= floor, plus `above`. */
class AgentDispatch {
  floor = 0;
  readonly above = new RangeSet();
  /** durable: no seq above it was ever handed to a handler (see noteHandedOver) */
  seen = 0;
  /** the highest mark asked for and not yet durable */
  seenAsked = 0;
  /** admitted, not recorded, and each could still open a range above the floor: counted against rangesPerAgentMax */
  readonly mayOpen = new RangeSet();
  mayOpenSeqs = 0;
  /** `changes` when mayOpen was last pruned: a prune before anything new was learned finds nothing */
  prunedAt = -1;
  /** records and floor raises learned */
  changes = 0;

  add(from: number, to: number): void {
    this.changes++;
    this.mayOpenSeqs -= this.mayOpen.delete(from, to);
    if (to <= this.floor) return;
    this.above.add(Math.max(from, this.floor + 1), to);
    const end = this.above.takePrefix(this.floor + 1);
    if (end !== null) this.floor = end;
    this.mayOpenSeqs -= this.mayOpen.dropThrough(this.floor);
  }

  raiseFloor(seq: number): void {
    if (seq <= this.floor) return;
    this.changes++;
    this.floor = seq;
    this.above.dropThrough(seq);
    const end = this.above.takePrefix(seq + 1);
    if (end !== null) this.floor = end;
    this.mayOpenSeqs -= this.mayOpen.dropThrough(this.floor);
  }

  /** Recording `seq` cannot add a range: it is recorded, or it touches the floor or a recorded range. */
  joins(seq: number): boolean {
    return seq <= this.floor + 1 || this.above.has(seq) || this.above.has(seq - 1) || this.above.has(seq + 1);
  }

  /**
   * Drops from mayOpen the seqs that now join a recorded range: only the ends of its ranges can
   * (a recorded neighbour is never in mayOpen), and once joined always joined (ranges only grow,
   * or fall under the floor). O(ranges of mayOpen), at most once per record learned.
   */
  pruneMayOpen(): void {
    if (this.prunedAt === this.changes) return;
    this.prunedAt = this.changes;
    for (const [a, b] of this.mayOpen.toArray()) {
      if (this.joins(a)) this.mayOpenSeqs -= this.mayOpen.delete(a);
      if (b > a && this.joins(b)) this.mayOpenSeqs -= this.mayOpen.delete(b);
    }
  }

  has(seq: number): boolean {
    return seq <= this.floor || this.above.has(seq);
  }
}

/** A log record: `s` raises the floor (also the only form version 1 wrote), `r` adds dispatched ranges, `h` raises the handed-over mark. */
interface LogRecord { a: string; s?: number; r?: SeqRange[]; h?: number }

/** A handed-over mark is raised this far past the seq that needed it, so most packets find it high enough and wait for no write. */
const seenStrideSeqs = 4096;

export interface DispatchLogOptions {
  /** the file is rewritten as a snapshot once it grows past this (default 8 MiB) and by compactGrowthRatio × the last snapshot */
  compactBytes?: number;
  /** how much the file must have grown since the last snapshot, as a share of it, before the next (default 1: at most one byte rewritten per byte appended; 0: on size alone) */
  compactGrowthRatio?: number;
  /** a record body is at most this (default common/record.ts recordBodyBytesMax); injectable so tests can reach it; the reader uses the same */
  recordBodyBytesMax?: number;
  /** the snapshot is written, and the file read at open, in pieces of about this size (default 1 MiB) */
  ioChunkBytes?: number;
  /** agents whose dispatch state is kept; `admit` refuses new ones past it (default 100,000) */
  agentsMax?: number;
  /** ranges above the floor per agent; `admit` refuses a seq that would open another (default 4,096) */
  rangesPerAgentMax?: number;
  /** where the log lives; default realFiles */
  files?: Files;
  /** starts timing one durable write (a group commit); the returned function ends it (the metrics' commit histogram) */
  commitTimer?: () => () => void;
}

/** Whether the session may dispatch a packet (see "Bounds" above). */
export type Admission = { ok: true } | { ok: false; code: ErrorCode; message: string; retryAfterMs: number };

/** Appends whose write returns once durable (each group commit is one writeAll, as in the agent's store). */
function openAppendDsync(files: Files, path: string): Promise<FileHandle> {
  return files.open(path, { create: true, append: true, dsync: true });
}

export class DispatchLog {
  private readonly dispatched = new Map<string, AgentDispatch>();
  /** undefined after a failed cut or compaction: the next batch reopens the file first */
  private fh: FileHandle | undefined;
  /** where the last whole record ends; nothing after it is trusted */
  private fileBytes = 0;
  private pending: { agent: string; seq: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  /** handed-over marks to write, and who waits for them */
  private seenMarks = new Map<string, number>();
  private seenWaiters: { agent: string; seq: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  /** floors raised since the last write; they ride the next write, nobody waits for them */
  private floors = new Map<string, number>();
  private flushing: Promise<void> | null = null;
  /** size of the last snapshot (0 until one is written): compaction waits until the file has grown by compactGrowthRatio × it */
  private snapshotBytes = 0;
  syncs = 0;
  compactions = 0;

  private constructor(
    private readonly dir: string,
    private readonly opts: Required<Omit<DispatchLogOptions, 'files' | 'commitTimer'>>,
    private readonly log: Log,
    private readonly files: Files,
    private readonly commitTimer: (() => () => void) | undefined,
  ) {}

  static async open(dir: string, log: Log, opts: DispatchLogOptions = {}): Promise<DispatchLog> {
    const files = opts.files ?? realFiles;
    const d = new DispatchLog(dir, {
      compactBytes: opts.compactBytes ?? 8 * 1024 * 1024, compactGrowthRatio: opts.compactGrowthRatio ?? 1, agentsMax: opts.agentsMax ?? 100_000,
      rangesPerAgentMax: opts.rangesPerAgentMax ?? 4096, recordBodyBytesMax: opts.recordBodyBytesMax ?? recordBodyBytesMax, ioChunkBytes: opts.ioChunkBytes ?? 1024 * 1024,
    }, log, files, opts.commitTimer);
    await mkdirDurable(files, dir);
    await d.reopen();
    return d;
  }

  private get path(): string {
    return join(this.dir, 'dispatched.log');
  }

  /**
   * Opens the file at the path, learns its valid records, cuts what follows them and makes the
   * directory entry durable (a new file, or a compaction's rename whose directory sync failed).
   */
  private async reopen(): Promise<void> {
    const fh = await openAppendDsync(this.files, this.path);
    try {
      const size = await fh.size();
      const validBytes = await this.learn(fh, size);
      if (validBytes < size) {
        this.log.warn('dispatch log: cut a torn tail', { bytes: size - validBytes });
        await fh.truncate(validBytes);
        await fh.datasync();
      }
      await this.files.syncDir(this.dir);
      this.fileBytes = validBytes;
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    this.fh = fh;
  }

  /** Learns the file's valid records (common/record-file.ts: read again before a CRC failure counts); returns where the last one ends. */
  private learn(fh: FileHandle, size: number): Promise<number> {
    return scanRecordFile(fh, size, { ...this.opts, what: `dispatch log: ${this.path}` }, (body) => {
      try {
        this.apply(cborDecoder.decode(body) as LogRecord);
      } catch {
        /* a record that passed its CRC but does not decode was written by another version: skip it */
      }
    });
  }

  /** Drops the handle (closing it quietly): the next batch reopens the file by its path. */
  private drop(): void {
    const fh = this.fh;
    this.fh = undefined;
    void fh?.close().catch(() => undefined);
  }

  private apply(rec: LogRecord): void {
    if (typeof rec !== 'object' || rec === null || typeof rec.a !== 'string') return;
    const d = this.agent(rec.a);
    if (typeof rec.s === 'number') d.raiseFloor(rec.s);
    if (Array.isArray(rec.r)) for (const [f, t] of rec.r) if (typeof f === 'number' && typeof t === 'number') d.add(f, t);
    if (typeof rec.h === 'number' && rec.h > d.seen) d.seen = rec.h;
  }

  private agent(id: string): AgentDispatch {
    let d = this.dispatched.get(id);
    if (!d) this.dispatched.set(id, (d = new AgentDispatch()));
    return d;
  }

  /** Agents with dispatch state. */
  get agents(): number {
    return this.dispatched.size;
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
   * Whether `seq` of `agent` may be dispatched within the bounds (module comment). The session
   * asks before it runs a handler, never after: a record is always taken.
   */
  admit(agent: string, seq: number): Admission {
    let d = this.dispatched.get(agent);
    if (!d) {
      if (this.dispatched.size >= this.opts.agentsMax) {
        return { ok: false, code: ErrorCode.AGENTS_MAX, message: `the dispatch log holds its maximum of ${this.opts.agentsMax} agents`, retryAfterMs: 60_000 };
      }
      // Known from now on: agents admitted while their first packets are in flight count too.
      d = this.agent(agent);
    }
    if (d.joins(seq) || d.mayOpen.has(seq)) return { ok: true };
    if (d.above.size + d.mayOpenSeqs >= this.opts.rangesPerAgentMax) d.pruneMayOpen();
    if (d.above.size + d.mayOpenSeqs < this.opts.rangesPerAgentMax) {
      d.mayOpen.add(seq);
      d.mayOpenSeqs++;
      return { ok: true };
    }
    return { ok: false, code: ErrorCode.TARGET_BUSY, message: `agent ${agent} has ${d.above.size} gaps in dispatch and ${d.mayOpenSeqs} packets in flight that may open more (at most ${this.opts.rangesPerAgentMax}): earlier packets must get through first`, retryAfterMs: 5000 };
  }

  /**
   * The agent has let go of every seq up to `seq` (dispatched, rejected for good, expired), so
   * none of them will come again: the floor moves up and the gaps below it are forgotten. Not
   * waited for: a floor lost in a crash is raised again by the agent's next HELLO.
   */
  raiseFloor(agent: string, seq: number): void {
    if (seq <= this.floor(agent)) return;
    // A new agent past agentsMax gets no state: its packets are refused by `admit` anyway.
    if (!this.dispatched.has(agent) && this.dispatched.size >= this.opts.agentsMax) return;
    this.agent(agent).raiseFloor(seq);
    this.floors.set(agent, Math.max(seq, this.floors.get(agent) ?? 0));
  }

  /** The highest seq of `agent` recorded as dispatched, 0 if none: what the agent's word may raise the floor to. */
  dispatchedMax(agent: string): number {
    const d = this.dispatched.get(agent);
    return d ? Math.max(d.floor, d.above.last) : 0;
  }

  /**
   * A durable bound on the seqs of `agent` ever handed to a handler, dispatched or not: what a
   * handler that de-duplicates (the file handler) may remember. An agent whose store was wiped
   * renumbers its packets above it (WELCOME `seenSeq`), so no new packet reuses such a seq.
   */
  seen(agent: string): number {
    const d = this.dispatched.get(agent);
    return d ? Math.max(d.seen, d.floor, d.above.last) : 0;
  }

  /**
   * Before `seq` of `agent` goes to a handler: null when the handed-over mark already covers it,
   * else a promise that resolves once a mark above it is durable (raised by a stride, so this is
   * one write per few thousand seqs).
   */
  noteHandedOver(agent: string, seq: number): Promise<void> | null {
    const d = this.agent(agent);
    if (seq <= d.seen) return null;
    if (seq > d.seenAsked) {
      d.seenAsked = seq + seenStrideSeqs;
      this.seenMarks.set(agent, d.seenAsked);
    }
    return new Promise((resolve, reject) => {
      this.seenWaiters.push({ agent, seq, resolve, reject });
      if (!this.flushing) this.flushing = this.flushLoop();
    });
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
    while (this.pending.length > 0 || this.seenWaiters.length > 0) {
      const batch = this.pending;
      this.pending = [];
      const seenWaiters = this.seenWaiters;
      this.seenWaiters = [];
      const seenMarks = this.seenMarks;
      this.seenMarks = new Map();
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
      for (const [a, h] of seenMarks) records.push({ a, h });
      try {
        const buf = Buffer.concat(records.flatMap((r) => this.frame(r)));
        if (buf.length > 0) await this.append(buf);
      } catch (err) {
        for (const [a, s] of floors) this.floors.set(a, Math.max(s, this.floors.get(a) ?? 0));
        for (const p of batch) p.reject(err);
        // The marks were not written: the next packet above the durable mark asks again.
        for (const a of seenMarks.keys()) {
          const d = this.dispatched.get(a);
          if (d) d.seenAsked = d.seen;
        }
        // Waiters that came meanwhile may count on the failed mark too: they fail with it (the
        // session retries them), or they would wait for a mark nobody asks for.
        for (const w of [...seenWaiters, ...this.seenWaiters.splice(0)]) w.reject(err);
        for (const a of seenMarks.keys()) this.seenMarks.delete(a);
        continue;
      }
      for (const r of records) this.apply(r);
      for (const p of batch) p.resolve();
      for (const w of seenWaiters) {
        // A waiter whose mark was asked for after this batch was taken waits for the next one.
        if (w.seq <= (this.dispatched.get(w.agent)?.seen ?? 0)) w.resolve();
        else {
          const d = this.agent(w.agent);
          if (w.seq > d.seenAsked) {
            d.seenAsked = w.seq + seenStrideSeqs;
            this.seenMarks.set(w.agent, d.seenAsked);
          }
          this.seenWaiters.push(w);
        }
      }
      if (this.fileBytes > this.opts.compactBytes && this.fileBytes - this.snapshotBytes >= this.opts.compactGrowthRatio * this.snapshotBytes) {
        await this.compact().catch((err: unknown) => {
          // The handle may name a file the rename replaced: drop it; the next batch reopens by path.
          this.drop();
          this.log.error('dispatch log: compaction failed', { err });
        });
      }
    }
    this.flushing = null;
  }

  /** Writes `buf` whole after the last whole record, or cuts the file back to it and throws. */
  private async append(buf: Buffer): Promise<void> {
    if (!this.fh) await this.reopen();
    const fh = this.fh!;
    const timed = this.commitTimer?.();
    try {
      // O_DSYNC: each write returns once its bytes are durable.
      await fh.writeAll(buf, null);
      timed?.();
    } catch (err) {
      await fh.truncate(this.fileBytes).catch((cutErr: unknown) => {
        this.log.error('dispatch log: could not cut a failed write; reopening before the next one', { err: cutErr });
        this.drop();
      });
      throw err;
    }
    this.syncs++;
    this.fileBytes += buf.length;
  }

  /**
   * Frames `rec`, split into records whose bodies fit recordBodyBytesMax: the first carries the
   * floor and the mark, every one a share of the ranges (applying them in turn gives the same state).
   */
  private frame(rec: LogRecord): Buffer[] {
    const max = this.opts.recordBodyBytesMax;
    // Nearly every record (a batch's few seqs) fits whole: encoded once, split only when it does not.
    const whole = cbor.encode(rec);
    if (whole.length <= max) return [frameRecord(whole, max)];
    const ranges = rec.r ?? [];
    // In CBOR a range takes at most 19 bytes (array head, two integers of at most 9 each), an array head at most 9.
    const perRecord = Math.max(1, Math.floor((max - cbor.encode({ ...rec, r: [] }).length - 9) / 19));
    const out: Buffer[] = [];
    for (let i = 0; i < ranges.length; i += perRecord) {
      const r = ranges.slice(i, i + perRecord);
      out.push(frameRecord(cbor.encode(i === 0 ? { ...rec, r } : { a: rec.a, r }), max));
    }
    return out;
  }

  /**
   * Rewrites the file as a snapshot: the records of one agent after the other, written in pieces
   * to a temporary file that then replaces the log (fsync, rename, directory fsync, as
   * writeFileAtomic does, but without the whole snapshot in one buffer).
   */
  private async compact(): Promise<void> {
    const tmp = `${this.path}.tmp`;
    const out = await this.files.open(tmp, { create: true, truncate: true });
    let bytes = 0;
    try {
      let parts: Buffer[] = [];
      let partBytes = 0;
      const write = async (): Promise<void> => {
        const buf = Buffer.concat(parts);
        parts = [];
        partBytes = 0;
        await out.writeAll(buf, bytes);
        bytes += buf.length;
      };
      for (const [a, d] of this.dispatched) {
        for (const rec of this.frame({ a, s: d.floor, r: d.above.toArray(), ...(d.seen > 0 ? { h: d.seen } : {}) })) {
          parts.push(rec);
          partBytes += rec.length;
        }
        if (partBytes >= this.opts.ioChunkBytes) await write();
      }
      if (partBytes > 0) await write();
      await out.datasync();
    } catch (err) {
      await out.close().catch(() => undefined);
      await this.files.unlink(tmp).catch(() => undefined);
      throw err;
    }
    await out.close();
    await this.files.rename(tmp, this.path);
    await this.files.syncDir(this.dir);
    // The old handle names the replaced file: never write to it again.
    this.drop();
    this.fileBytes = bytes;
    this.snapshotBytes = bytes;
    this.compactions++;
    this.fh = await openAppendDsync(this.files, this.path);
    this.log.info('dispatch log: compacted', { agents: this.dispatched.size, bytes });
  }

  async close(): Promise<void> {
    while (this.flushing) await this.flushing;
    await this.fh?.close();
    this.fh = undefined;
  }
}

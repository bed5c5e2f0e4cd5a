/**
 * The agent's flash store: append-only segment files of CRC-framed records, group commit, acks
 * kept as records in the same stream (no sync of their own), whole segments deleted once done.
 * Written by hand because what it must guarantee is the product: a resolved append survives
 * power loss, a damaged file never stops the agent, memory does not grow with the backlog, and
 * flash sees few, whole-block-friendly writes. SQLite or LevelDB would give durability, but with
 * a sync per transaction, page rewrites, and a refusal to open a corrupt file.
 */
import { basename, dirname, join } from 'node:path';
import { frameRecord, recordHeaderBytes } from '../../common/record.js';
import type { FileHandle, Files, OpenOptions } from '../../common/files.js';
import { realFiles } from '../../common/real-files.js';
import { realClock, type Clock } from '../../common/clock.js';
import { silentLog, type Log } from '../../common/log.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import type { NewPacket, Packet } from '../../protocol/packet.js';
import { seqMax } from '../../protocol/frames.js';
import { DeadLetterLog } from './dead-letters.js';
import { lockDir } from './lock.js';
import { AckTracker } from './ack-tracker.js';
import { encodeAcksRecord, encodePacketRecord, rebasePacketRecord, type AckState } from './record-codec.js';
import { recoverSegments, type SegmentMeta } from './recover.js';
import { encodeHeader, encodeTrailer, segmentFileName, segmentHeaderBytes } from './segment.js';
import { SegmentCursor } from './segment-cursor.js';
import { TailCache } from './tail-cache.js';
import { firstUnacked } from './backlog-head.js';
import type { DeadLetter, DropCounts, FullPolicy, PacketStore, StoreStats, SyncPolicy } from './store.js';

export interface SegmentStoreOptions {
  dir: string;
  sync?: SyncPolicy;
  /** with sync `batch`: how long an append may wait for others to share its sync (at most 10) */
  batchWindowMs?: number;
  /** a segment is sealed once it reaches this size; a multiple of the flash erase block */
  segmentBytes?: number;
  /** capacity of the store's segment files */
  bytesMax?: number;
  fullPolicy?: FullPolicy;
  /** acks with no appends to ride along are written after at most this long */
  ackFlushMs?: number;
  clock?: Clock;
  log?: Log;
  /** every file of the store (segments, dead letters, the lock) goes through this; default realFiles */
  files?: Files;
  /** told how long each commit (a group's write and its sync) took, in seconds; the agent's metrics histogram */
  onCommit?: (seconds: number) => void;
  /** a monotonic clock in ms for timing commits; default performance.now */
  monoNowMs?: () => number;
}

interface Pending {
  packet: Packet;
  /** the record body, encoded once at append; its seq delta is set when its segment is known */
  body: Buffer;
  resolve: (p: Packet) => void;
  reject: (err: unknown) => void;
}

const ackRangesMax = 4096;
const renumberTmpName = 'renumber.tmp';

export class SegmentStore implements PacketStore {
  private readonly o: Required<Omit<SegmentStoreOptions, 'clock' | 'log' | 'files' | 'onCommit' | 'monoNowMs'>>;
  private readonly onCommit: ((seconds: number) => void) | undefined;
  private readonly monoNowMs: () => number;
  /** the oldest backlog packet last found (seq and ts only): found again only once it is acked */
  private head: { seq: number; ts: number } | null = null;
  private readonly clock: Clock;
  private readonly files: Files;
  private readonly log: Log;
  private segments: SegmentMeta[] = [];
  /** null after a roll sealed the old segment but could not start the next: the next write starts it at `nextBase` */
  private active: { meta: SegmentMeta; fh: FileHandle } | null = null;
  private nextBase = 1;
  /** a failed write could not be cut back: the file must be cut to this size before anything else is written to it */
  private cutPending: { fh: FileHandle; bytes: number } | null = null;
  private lastSeq = 0;
  private acks = new AckTracker();
  private acksDirty = false;
  private ackTimer: unknown = null;
  private pending: Pending[] = [];
  private pendingBytes = 0;
  private flushing: Promise<void> | null = null;
  private flushTimer: { timeout: NodeJS.Timeout } | { immediate: NodeJS.Immediate } | null = null;
  private readonly tailCache = new TailCache();
  private cursor: SegmentCursor | null = null;
  private closed = false;
  private unlock: () => Promise<void> = async () => undefined;
  private deadLetterLog!: DeadLetterLog;
  private listeners: (() => void)[] = [];
  private writeChain: Promise<unknown> = Promise.resolve();
  private deadLetterChain: Promise<unknown> = Promise.resolve();
  /** file deletions in flight; close waits for them */
  private deletions: Promise<void> = Promise.resolve();
  private readonly counters = { appended: 0, acked: 0, rejected: 0, deadLetters: 0, syncs: 0, renumbered: 0 };
  /**
   * ackedSeq as last written to disk (or derived from it at open). Only this is told to the
   * gateway (HELLO, PING): a seq marked done in memory alone (a failed append) may be handed out
   * again after a power cut, and must not be named done to the gateway before that cannot happen.
   */
  private durableAckedSeq = 0;
  /** created empty (new or wiped) and not yet confirmed by a gateway: see renumberAbove */
  private fresh = false;
  /** while a renumbering runs, appends wait for it (they must get seqs above the renumbered ones) */
  private renumbering: Promise<void> | null = null;
  private readonly dropped: DropCounts = { oldest: 0, priority: 0, ttl: 0, corrupt: 0 };
  private readonly recovery = { tailBytesCut: 0, damagedSegments: 0 };

  private constructor(opts: SegmentStoreOptions) {
    const segmentBytes = opts.segmentBytes ?? 4 * 1024 * 1024;
    const bytesMax = opts.bytesMax ?? 256 * 1024 * 1024;
    this.o = {
      dir: opts.dir, sync: opts.sync ?? 'always', batchWindowMs: Math.min(10, opts.batchWindowMs ?? 10),
      // At least four segments fit, so dropping one frees a useful share and the tail always fits.
      segmentBytes: Math.max(4096, Math.min(segmentBytes, Math.floor(bytesMax / 4))),
      bytesMax, fullPolicy: opts.fullPolicy ?? 'drop-oldest', ackFlushMs: opts.ackFlushMs ?? 1000,
    };
    this.clock = opts.clock ?? realClock;
    this.log = opts.log ?? silentLog;
    this.files = opts.files ?? realFiles;
    this.onCommit = opts.onCommit;
    this.monoNowMs = opts.monoNowMs ?? (() => performance.now());
  }

  static async open(opts: SegmentStoreOptions): Promise<SegmentStore> {
    const s = new SegmentStore(opts);
    await s.recover();
    return s;
  }

  private async recover(): Promise<void> {
    const { dir } = this.o;
    await this.files.mkdir(dir);
    // A store directory just made must itself survive a power cut, or every packet in it goes too.
    await this.files.syncDir(dirname(dir));
    this.unlock = await lockDir(this.files, dir);
    await this.files.unlink(join(dir, renumberTmpName)).catch(() => undefined);
    const r = await recoverSegments(this.files, dir, this.log);
    this.recovery.tailBytesCut = r.tailBytesCut;
    this.recovery.damagedSegments = r.damagedSegments;
    this.segments = r.segments;
    // No segment at all: a new store, or one whose files were wiped. Its seqs may repeat those of
    // an earlier life of this agent's store, until a gateway's WELCOME has been heard (renumberAbove).
    // No ack state on disk: this store never confirmed its numbering with a gateway (that writes
    // one), e.g. a wiped store killed after its first append: still fresh (found by the simulator, seed 991012597).
    this.fresh = r.segments.length === 0 || r.acks.fresh === true || !r.acksFound;
    this.acks = new AckTracker(r.acks.ackedSeq, r.acks.done);
    // Count only what was still pending: damage to packets already acked loses nothing.
    for (const [a, b] of r.lostRanges) this.dropped.corrupt += this.acks.markDone(a, b);
    // Segments deleted before a crash were done: nothing below the oldest one is pending.
    const oldest = this.segments[0];
    if (oldest) this.acks.doneThrough(oldest.baseSeq - 1);
    // Never hand out a seq twice: not one of a packet on disk, nor one the ack state knew of.
    const doneMax = r.acks.done.reduce((n, [, b]) => Math.max(n, b), 0);
    this.lastSeq = Math.max(this.acks.ackedSeq, r.acks.lastSeq, doneMax, ...this.segments.map((m) => Math.max(m.lastSeq, m.baseSeq - 1)));
    this.markNeverWritten(r.gaps);
    // Everything done now follows from what is on disk.
    this.durableAckedSeq = this.acks.ackedSeq;
    await this.removeDoneSegments();
    const last = this.segments[this.segments.length - 1];
    if (last && !last.sealed) {
      this.active = { meta: last, fh: await this.files.open(last.path, this.activeOpts(false)) };
    } else {
      await this.startSegment(this.lastSeq + 1);
    }
    this.deadLetterLog = await DeadLetterLog.open(this.files, join(dir, 'dead-letters.log'));
    if (r.tailBytesCut > 0 || r.damagedSegments > 0 || this.dropped.corrupt > 0) {
      this.log.warn('store: recovered with losses', { ...this.recovery, corruptPackets: this.dropped.corrupt });
    }
  }

  /**
   * A seq with no record on disk and no damage where it would be was never durably appended (its
   * batch failed, or a roll was cut short after the ack state named it): it is done, neither
   * acked nor dropped, so neither the store's ackedSeq nor the gateway's floor waits for it.
   * Gaps inside the scanned tail come from recovery; gaps between segments and above the newest
   * record are found here. (Gaps inside older sealed segments were marked done in memory when the
   * batch failed, and the ack state written when the next segment started carries them.)
   */
  private markNeverWritten(tailGaps: [number, number][]): void {
    for (const [a, b] of tailGaps) this.acks.markDone(a, b);
    for (let i = 0; i + 1 < this.segments.length; i++) {
      const a = this.segments[i]!;
      const b = this.segments[i + 1]!;
      if (b.baseSeq - 1 > a.lastSeq) this.acks.markDone(a.lastSeq + 1, b.baseSeq - 1);
    }
    const newest = this.segments[this.segments.length - 1];
    const from = newest ? newest.lastSeq + 1 : this.acks.ackedSeq + 1;
    if (this.lastSeq >= from) this.acks.markDone(from, this.lastSeq);
  }

  // ---- appending -------------------------------------------------------------------------

  append(input: NewPacket): Promise<Packet> {
    if (this.closed) return Promise.reject(closedError());
    if (this.renumbering) return this.renumbering.then(() => this.append(input));
    const packet: Packet = { seq: this.lastSeq + 1, target: input.target, ts: input.ts, data: input.data };
    if (input.ttlMs !== undefined) packet.ttlMs = input.ttlMs;
    if (input.priority !== undefined) packet.priority = input.priority;
    // Encoded once, now (for its size); the seq delta is rebased on the segment it lands in.
    const body = encodePacketRecord(packet, packet.seq);
    const size = recordHeaderBytes + body.length;
    if (!this.makeRoom(size, packet.priority ?? 0)) {
      this.counters.rejected++;
      return Promise.reject(new FerryError(ErrorCode.STORE_FULL, `store is full (${this.storeBytes() + this.pendingBytes} of ${this.o.bytesMax} bytes)`));
    }
    this.lastSeq = packet.seq;
    this.pendingBytes += size;
    return new Promise<Packet>((resolve, reject) => {
      this.pending.push({ packet, body, resolve, reject });
      this.scheduleFlush(this.o.sync === 'batch' ? this.o.batchWindowMs : 0);
    });
  }

  /**
   * A waiting append keeps the process alive, so this is a real, referenced timer (unlike the
   * clock's). With no batch window, setImmediate: appends made in the same turn of the event loop
   * still share the write, without the 1 ms a zero setTimeout really takes.
   */
  private scheduleFlush(delayMs: number): void {
    if (this.flushing || this.flushTimer !== null) return;
    const go = (): void => {
      this.flushTimer = null;
      this.runFlush();
    };
    this.flushTimer = delayMs > 0 ? { timeout: setTimeout(go, delayMs) } : { immediate: setImmediate(go) };
  }

  private cancelFlushTimer(): void {
    const t = this.flushTimer;
    if (t === null) return;
    if ('timeout' in t) clearTimeout(t.timeout);
    else clearImmediate(t.immediate);
    this.flushTimer = null;
  }

  /** Every write to the segment files goes through here, one at a time, in order. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writeChain.then(fn, fn);
    this.writeChain = run.catch(() => undefined);
    return run;
  }

  private runFlush(): void {
    this.flushing = this.serial(() => this.flush()).finally(() => {
      this.flushing = null;
      if (this.pending.length > 0) this.scheduleFlush(this.o.sync === 'batch' ? this.o.batchWindowMs : 0);
    });
  }

  /**
   * Group commit: every append queued so far (and the ack state, if it changed) in one write and
   * one sync. A batch larger than the room left in the segment is split: the first part seals the
   * segment (its records and trailer synced together) and the rest goes on in a new one.
   */
  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    const withAcks = this.acksDirty;
    if (batch.length === 0 && !withAcks) return;
    this.acksDirty = false;
    let written = 0;
    try {
      for (;;) {
        const seg = (await this.ensureActive()).meta;
        const parts: Buffer[] = [];
        const packets: Packet[] = [];
        let size = seg.bytes;
        while (written + packets.length < batch.length) {
          const { packet, body } = batch[written + packets.length]!;
          const rec = frameRecord(rebasePacketRecord(body, packet.seq, seg.baseSeq));
          // A segment takes at least one packet, however large.
          if ((packets.length > 0 || seg.packets > 0) && size + rec.length > this.o.segmentBytes) break;
          parts.push(rec);
          packets.push(packet);
          size += rec.length;
        }
        if (written + packets.length < batch.length) {
          // Sealed with the segment's trailer, these packets are durable even if the next
          // segment cannot start: they resolve, and only the rest of the batch fails.
          await this.seal(parts, packets);
          written += packets.length;
          await this.startNext(batch[written]!.packet.seq);
          continue;
        }
        const acked = this.acks.ackedSeq;
        if (withAcks) parts.push(frameRecord(encodeAcksRecord(this.ackState())));
        await this.writeActive(parts, packets);
        if (withAcks) this.durableAckedSeq = Math.max(this.durableAckedSeq, acked);
        written += packets.length;
        break;
      }
    } catch (err) {
      const failure = new FerryError(ErrorCode.STORE_IO, `store write failed: ${(err as Error).message}`, { cause: err });
      // The refused seqs are done; the ack state that says so (and that no seq up to them is
      // handed out again) is written soon, and only then told to the gateway.
      this.markAcksDirty();
      for (const p of batch.slice(written)) {
        this.acks.markDone(p.packet.seq);
        p.reject(failure);
      }
    }
    this.tailCache.dropThrough(this.acks.ackedSeq);
    for (const p of batch.slice(0, written)) {
      this.tailCache.push(p.packet);
      this.counters.appended++;
      p.resolve(p.packet);
    }
    if (written > 0) for (const l of this.listeners) l();
    if (this.o.fullPolicy === 'drop-oldest') this.enforceCapacity();
    if (withAcks) await this.removeDoneSegments();
  }

  /** drop-oldest after a write that outgrew the capacity: drop the oldest sealed segments until it fits. */
  private enforceCapacity(): void {
    while (this.storeBytes() > this.o.bytesMax) {
      const oldest = this.segments.find((m) => m !== this.active?.meta);
      if (!oldest) return;
      this.dropSegment(oldest, 'oldest');
    }
  }

  /** Appends records to the active segment and syncs them; the segment's summary follows only once they are durable. */
  private async writeActive(parts: Buffer[], packets: Packet[]): Promise<void> {
    const { meta: seg, fh } = await this.ensureActive();
    const buf = Buffer.concat(parts);
    await this.appendDurably(fh, buf, seg.bytes, false);
    seg.bytes += buf.length;
    summarize(seg, packets);
  }

  /**
   * Seals the active segment, with `parts` (the records of `packets`) written just before its
   * trailer and synced with it, and starts a new segment whose first packet will be `baseSeq`.
   */
  private async roll(baseSeq: number, parts: Buffer[] = [], packets: Packet[] = []): Promise<void> {
    await this.seal(parts, packets);
    await this.startNext(baseSeq);
  }

  /** Writes `parts` (the records of `packets`) and the trailer at the end of the active segment, synced together; on failure nothing of them stays. */
  private async seal(parts: Buffer[], packets: Packet[]): Promise<void> {
    const old = await this.ensureActive();
    const summary = { lastSeq: old.meta.lastSeq, packets: old.meta.packets, maxPriority: old.meta.maxPriority };
    summarize(summary, packets);
    const buf = Buffer.concat([...parts, encodeTrailer(summary)]);
    await this.appendDurably(old.fh, buf, old.meta.bytes, true);
    Object.assign(old.meta, summary, { bytes: old.meta.bytes + buf.length, sealed: true, trailer: true });
    // From here the old segment is sealed: were the next one not to start, the next write starts it.
    this.active = null;
    await old.fh.close().catch(() => undefined);
  }

  /** Starts the segment after a sealed one; if that fails, the next write tries again. */
  private async startNext(baseSeq: number): Promise<void> {
    this.nextBase = baseSeq;
    await this.startSegment(baseSeq);
  }

  /** The active segment, started first if a failed roll left none. */
  private async ensureActive(): Promise<{ meta: SegmentMeta; fh: FileHandle }> {
    if (!this.active) await this.startSegment(this.nextBase);
    return this.active!;
  }

  /**
   * Writes `buf` at `offset` (the segment's end) durably under the sync policy; a seal is synced
   * whatever the policy. With O_DSYNC (sync 'always') the write itself is durable: one trip to
   * the thread pool, not two. On failure the file is cut back so later records never follow a
   * torn one.
   */
  private async appendDurably(fh: FileHandle, buf: Buffer, offset: number, seal: boolean): Promise<void> {
    if (this.cutPending?.fh === fh) {
      await fh.truncate(this.cutPending.bytes);
      this.cutPending = null;
    }
    try {
      const startMs = this.onCommit ? this.monoNowMs() : 0;
      // Whole or failed: a write that comes back short (a full disk) is finished or fails the batch.
      await fh.writeAll(buf, offset);
      if (this.o.sync === 'batch' || (seal && this.o.sync === 'none')) await fh.datasync();
      if (seal || this.o.sync !== 'none') this.counters.syncs++;
      this.onCommit?.((this.monoNowMs() - startMs) / 1000);
    } catch (err) {
      // Cut back to the last whole record, so nothing of a refused batch can come back at recovery.
      await fh.truncate(offset).catch(() => {
        this.cutPending = { fh, bytes: offset };
      });
      throw err;
    }
  }

  /** The active segment is opened O_DSYNC under sync 'always': each group commit is one write call. */
  private activeOpts(create: boolean): OpenOptions {
    return { create, truncate: create, dsync: this.o.sync === 'always' };
  }

  /** Creates a segment file: header and the current ack state, synced, and the directory entry synced. */
  private async startSegment(baseSeq: number): Promise<void> {
    const path = join(this.o.dir, segmentFileName(baseSeq));
    const fh = await this.files.open(path, this.activeOpts(true));
    const acked = this.acks.ackedSeq;
    const buf = Buffer.concat([encodeHeader(baseSeq), frameRecord(encodeAcksRecord(this.ackState()))]);
    try {
      await fh.writeAll(buf, 0);
      await fh.datasync();
      await this.files.syncDir(this.o.dir);
    } catch (err) {
      // Not started: no handle leaks, and no file is left that recovery would take for the tail.
      await fh.close().catch(() => undefined);
      await this.files.unlink(path).catch(() => undefined);
      throw err;
    }
    const meta: SegmentMeta = { baseSeq, path, bytes: buf.length, sealed: false, trailer: false, damaged: false, lastSeq: baseSeq - 1, packets: 0, maxPriority: 0 };
    this.segments.push(meta);
    this.active = { meta, fh };
    this.durableAckedSeq = Math.max(this.durableAckedSeq, acked);
  }

  // ---- capacity ----------------------------------------------------------------------------

  private storeBytes(): number {
    return this.segments.reduce((n, m) => n + m.bytes, 0);
  }

  /** Applies the full policy so `bytes` more fit; false means refuse the append. */
  private makeRoom(bytes: number, priority: number): boolean {
    if (this.storeBytes() + this.pendingBytes + bytes <= this.o.bytesMax) return true;
    this.reclaimDone();
    while (this.storeBytes() + this.pendingBytes + bytes > this.o.bytesMax) {
      if (this.o.fullPolicy === 'reject') return false;
      const sealed = this.segments.filter((m) => m !== this.active?.meta);
      // drop-oldest never refuses: what is queued now is made room for once it is written.
      if (sealed.length === 0) return this.o.fullPolicy === 'drop-oldest';
      let victim = sealed[0]!;
      if (this.o.fullPolicy === 'priority') {
        for (const m of sealed) if (m.maxPriority < victim.maxPriority) victim = m;
        if (victim.maxPriority > priority) return false;
      }
      this.dropSegment(victim, this.o.fullPolicy === 'priority' ? 'priority' : 'oldest');
    }
    return true;
  }

  private dropSegment(m: SegmentMeta, reason: 'oldest' | 'priority'): void {
    const from = Math.max(m.baseSeq, this.acks.ackedSeq + 1);
    if (m.lastSeq >= from) {
      const lost = this.acks.markDone(from, m.lastSeq);
      this.dropped[reason] += lost;
      this.log.warn('store: full; dropped a segment', { reason, packets: lost, firstSeq: from, lastSeq: m.lastSeq });
    }
    this.segments = this.segments.filter((x) => x !== m);
    if (this.cursor?.segment === m) this.resetCursor();
    this.deletions = Promise.all([this.deletions, this.files.unlink(m.path).catch(() => undefined)]).then(() => undefined);
    this.markAcksDirty();
  }

  // ---- acks --------------------------------------------------------------------------------

  async ack(seq: number): Promise<void> {
    if (this.closed) throw closedError();
    const newly = this.acks.doneThrough(Math.min(seq, this.lastSeq));
    if (newly === 0) return;
    this.counters.acked += newly;
    this.markAcksDirty();
  }

  /** Acked, dead-lettered or dropped (`ferry send --wait` asks before it waits). */
  isDone(seq: number): boolean {
    return this.acks.isDone(seq);
  }

  async ackOne(seq: number, to = seq): Promise<void> {
    if (this.closed) throw closedError();
    if (seq > this.lastSeq) return;
    const newly = this.acks.markDone(seq, Math.min(to, this.lastSeq));
    if (newly === 0) return;
    this.counters.acked += newly;
    this.markAcksDirty();
  }

  private ackState(): AckState {
    return { ackedSeq: this.acks.ackedSeq, done: this.acks.ranges(ackRangesMax), lastSeq: this.lastSeq, ...(this.fresh ? { fresh: true } : {}) };
  }

  private markAcksDirty(): void {
    this.acksDirty = true;
    this.scheduleAckFlush();
  }

  /**
   * Acks are not worth a sync each: they ride along with the next appends, or are written
   * ackFlushMs after they came, queued behind any write in progress.
   */
  private scheduleAckFlush(): void {
    if (this.ackTimer !== null || this.closed) return;
    this.ackTimer = this.clock.setTimeout(() => {
      this.ackTimer = null;
      if (this.acksDirty) this.serial(() => this.flush()).catch((err: unknown) => this.log.error('store: writing acks failed', { err }));
    }, this.o.ackFlushMs);
  }

  /**
   * Space is needed now: forget sealed segments whose packets are all done at once, without
   * waiting for the ack state to be written (were the device to lose it, those packets would
   * simply be gone, and they were acked). The files go in the background.
   */
  private reclaimDone(): void {
    this.deletions = Promise.all([this.deletions, this.removeDoneSegments()]).then(() => undefined);
  }

  /** Deletes sealed segments whose every packet is done; damaged ones go to damaged/ for inspection. */
  private async removeDoneSegments(): Promise<void> {
    const doneSegs = this.segments.filter((m) => m.sealed && m !== this.active?.meta && m.lastSeq <= this.acks.ackedSeq);
    if (doneSegs.length === 0) return;
    this.segments = this.segments.filter((m) => !doneSegs.includes(m));
    for (const m of doneSegs) {
      if (this.cursor?.segment === m) this.resetCursor();
      if (m.damaged) {
        await this.files.mkdir(join(this.o.dir, 'damaged'));
        await this.files.rename(m.path, join(this.o.dir, 'damaged', basename(m.path))).catch(() => undefined);
      } else {
        await this.files.unlink(m.path).catch(() => undefined);
      }
    }
  }

  // ---- reading -----------------------------------------------------------------------------

  async readAfter(seq: number, countMax: number): Promise<Packet[]> {
    if (this.closed) throw closedError();
    const out: Packet[] = [];
    this.tailCache.dropThrough(this.acks.ackedSeq);
    let after = Math.max(seq, this.acks.ackedSeq);
    const nowMs = this.clock.now();
    while (out.length < countMax) {
      // Recent packets come from memory; only a backlog older than the cache is read from disk.
      const cacheFirst = this.tailCache.firstSeq;
      if (cacheFirst !== undefined && cacheFirst <= after + 1) {
        for (let i = this.tailCache.indexAfter(after); i < this.tailCache.length && out.length < countMax; i++) {
          const p = this.tailCache.at(i);
          after = p.seq;
          if (this.keep(p, nowMs)) out.push(p);
        }
        break;
      }
      const cursor = await this.cursorAt(after);
      if (!cursor) break;
      const p = await cursor.next();
      if (cursor.lost.length > 0 || (cursor.damageSeen && !cursor.segment.damaged)) this.takeLost(cursor);
      if (p) {
        after = p.seq;
        if (this.keep(p, nowMs)) out.push(p);
        continue;
      }
      // The segment holds nothing more now: go on after its last seq (the next segment, or the cache).
      if (cursor.segment === this.active?.meta) break;
      after = Math.max(after, cursor.segment.lastSeq);
      this.resetCursor();
    }
    return out;
  }

  /** Not acked, not dropped, not expired (an expired one is dropped here and counted). */
  private keep(p: Packet, nowMs: number): boolean {
    if (this.acks.isDone(p.seq)) return false;
    if (p.ttlMs !== undefined && p.ts + p.ttlMs < nowMs) {
      this.dropped.ttl += this.acks.markDone(p.seq);
      this.markAcksDirty();
      return false;
    }
    return true;
  }

  private takeLost(cursor: SegmentCursor): void {
    for (const [a, b] of cursor.lost.splice(0)) {
      const from = Math.max(a, this.acks.ackedSeq + 1);
      if (b < from) continue;
      const n = this.acks.markDone(from, b);
      if (n > 0) {
        this.dropped.corrupt += n;
        this.log.error('store: damaged records skipped', { segment: cursor.segment.path, firstSeq: from, lastSeq: b, packets: n });
      }
    }
    if (!cursor.segment.damaged && cursor.damageSeen) {
      cursor.segment.damaged = true;
      this.recovery.damagedSegments++;
    }
    this.markAcksDirty();
  }

  /** A cursor that yields packets after `after`, reusing the current one when it is there already. */
  private async cursorAt(after: number): Promise<SegmentCursor | null> {
    if (this.cursor && this.cursor.after === after && this.segments.includes(this.cursor.segment)) return this.cursor;
    this.resetCursor();
    let seg: SegmentMeta | undefined;
    for (const m of this.segments) if (m.baseSeq <= after + 1) seg = m;
    seg ??= this.segments.find((m) => m.lastSeq > after);
    if (!seg) return null;
    // A segment that holds nothing after `after` hands over to the next one.
    while (seg && seg.lastSeq <= after) seg = this.segments[this.segments.indexOf(seg) + 1];
    if (!seg) return null;
    this.cursor = await SegmentCursor.open(this.files, seg, after);
    return this.cursor;
  }

  private resetCursor(): void {
    void this.cursor?.close();
    this.cursor = null;
  }

  // ---- dead letters, seq, stats, close -----------------------------------------------------

  /**
   * Dead-letter changes take turns: a requeue lists, appends and then empties the log, so a second
   * requeue in between would append the same letters twice, and a letter added in between would be
   * emptied without having been appended (both found by review).
   */
  private deadLetterTurn<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.deadLetterChain.then(fn, fn);
    this.deadLetterChain = run.catch(() => undefined);
    return run;
  }

  async deadLetter(packet: Packet, code: string, message: string): Promise<void> {
    if (this.closed) throw closedError();
    await this.deadLetterTurn(() => this.deadLetterLog.add(packet, code, message));
    this.counters.deadLetters++;
    await this.ackOne(packet.seq);
  }

  async deadLetters(): Promise<DeadLetter[]> {
    if (this.closed) throw closedError();
    return this.deadLetterLog.list();
  }

  async requeueDeadLetters(): Promise<number> {
    return this.deadLetterTurn(async () => {
      const letters = await this.deadLetters();
      await Promise.all(letters.map(({ packet: { seq: _seq, ...rest } }) => this.append(rest)));
      await this.deadLetterLog.clear();
      return letters.length;
    });
  }

  onAppend(listener: () => void): void {
    this.listeners.push(listener);
  }

  async advanceSeq(seq: number): Promise<void> {
    if (this.closed) throw closedError();
    if (seq <= this.lastSeq) return;
    await this.serial(async () => {
      if (seq <= this.lastSeq) return;
      // Appends already given a seq go first, into the current segment.
      this.cancelFlushTimer();
      await this.flush();
      // The skipped seqs were never assigned: done, neither acked nor dropped.
      this.acks.markDone(this.lastSeq + 1, seq);
      this.lastSeq = seq;
      // A new segment based above `seq`, with the ack state, makes the jump durable.
      await this.roll(seq + 1);
    });
    if (this.pending.length > 0) this.scheduleFlush(0);
  }

  /**
   * The gateway has dispatched seqs up to `seq` that this store never issued (it was wiped or
   * replaced): its packets' seqs would name other packets there. Every packet it holds gets its
   * seq plus `seq`, so all of them lie above what the gateway knows and keep their order; the ack
   * state is shifted with them. Atomic: the renumbered packets and the shifted ack state are
   * written to a temporary segment, synced and renamed into place, so a crash leaves either the
   * old store or the new one. Appends made meanwhile wait and get seqs above. Resolves with how
   * many packets were renumbered.
   */
  renumberAbove(seq: number): Promise<number> {
    if (this.closed) return Promise.reject(closedError());
    if (seq <= this.lastSeq && !this.fresh) return Promise.resolve(0);
    // Renumbered seqs lie above both what the gateway named and what this store issued, so they
    // collide with neither; a fresh store the gateway knows nothing of only has to say so.
    const run = this.serial(() => (seq === 0 ? this.confirmNumbering() : this.renumber(Math.max(seq, this.lastSeq))));
    const gate: Promise<void> = run.then(() => undefined, () => undefined).finally(() => {
      if (this.renumbering === gate) this.renumbering = null;
    });
    this.renumbering = gate;
    return run;
  }

  /** The gateway knows no seq of this agent: the store's numbering stands; durable before it resolves. */
  private async confirmNumbering(): Promise<number> {
    this.cancelFlushTimer();
    this.fresh = false;
    this.acksDirty = true;
    try {
      await this.flush();
    } catch (err) {
      this.fresh = true;
      throw err;
    }
    if (this.acksDirty) {
      // The ack state could not be written: stay fresh, the next WELCOME asks again.
      this.fresh = true;
      throw new FerryError(ErrorCode.STORE_IO, 'could not record that the gateway confirmed the store\'s numbering');
    }
    return 0;
  }

  private async renumber(offset: number): Promise<number> {
    this.cancelFlushTimer();
    await this.flush();
    const oldLastSeq = this.lastSeq;
    if (offset + oldLastSeq > seqMax) throw new FerryError(ErrorCode.STORE_IO, `cannot renumber above seq ${offset}: seqs would pass seqMax (${seqMax})`);
    const baseSeq = offset + 1;
    const tmp = join(this.o.dir, renumberTmpName);
    const fh = await this.files.open(tmp, { create: true, truncate: true });
    let shifted: AckState;
    const meta: SegmentMeta = { baseSeq, path: join(this.o.dir, segmentFileName(baseSeq)), bytes: 0, sealed: false, trailer: false, damaged: false, lastSeq: baseSeq - 1, packets: 0, maxPriority: 0 };
    try {
      await fh.writeAll(encodeHeader(baseSeq), 0);
      meta.bytes = segmentHeaderBytes;
      for (let after = 0; ;) {
        const batch = await this.readAfter(after, 256);
        if (batch.length === 0) break;
        after = batch[batch.length - 1]!.seq;
        const moved = batch.map((p) => ({ ...p, seq: p.seq + offset }));
        const buf = Buffer.concat(moved.map((p) => frameRecord(encodePacketRecord(p, baseSeq))));
        await fh.writeAll(buf, meta.bytes);
        meta.bytes += buf.length;
        summarize(meta, moved);
      }
      shifted = {
        ackedSeq: offset + this.acks.ackedSeq,
        done: this.acks.ranges(ackRangesMax).map(([a, b]) => [a + offset, b + offset] as [number, number]),
        lastSeq: offset + oldLastSeq,
      };
      // The next segment must be named above this one: with nothing renumbered, its base seq is
      // used up (done) so the two files never share a name.
      if (shifted.lastSeq < baseSeq) {
        shifted.done.push([baseSeq, baseSeq]);
        shifted.lastSeq = baseSeq;
      }
      // not fresh: the renumbered state is what the gateway has now been told
      const acksRec = frameRecord(encodeAcksRecord(shifted));
      await fh.writeAll(acksRec, meta.bytes);
      meta.bytes += acksRec.length;
      await fh.datasync();
      await fh.close();
      await this.files.rename(tmp, meta.path);
      await this.files.syncDir(this.o.dir);
    } catch (err) {
      await fh.close().catch(() => undefined);
      await this.files.unlink(tmp).catch(() => undefined);
      throw new FerryError(ErrorCode.STORE_IO, `renumbering the store failed: ${(err as Error).message}`, { cause: err });
    }
    // Durable from here: switch over in memory. The renumbered segment is never appended to; the
    // next segment starts above it (now, or with the next write if that fails).
    const old = this.active;
    this.active = null;
    await old?.fh.close().catch(() => undefined);
    for (const m of this.segments) m.sealed = true;
    meta.sealed = true;
    this.segments.push(meta);
    this.acks = new AckTracker(shifted.ackedSeq, shifted.done);
    this.lastSeq = shifted.lastSeq;
    this.durableAckedSeq = shifted.ackedSeq;
    this.fresh = false;
    this.nextBase = this.lastSeq + 1;
    this.resetCursor();
    this.tailCache.dropThrough(Number.MAX_SAFE_INTEGER);
    this.counters.renumbered += meta.packets;
    this.log.warn('store: renumbered every packet above the seqs the gateway knows (the store was wiped or replaced)', { packets: meta.packets, above: offset, lastSeq: this.lastSeq });
    try {
      await this.startSegment(this.nextBase);
      await this.removeDoneSegments();
    } catch (err) {
      this.log.warn('store: after renumbering, the next segment could not start yet', { err });
    }
    return meta.packets;
  }

  highestIssuedSeq(): number {
    return this.lastSeq;
  }

  stats(): StoreStats {
    let stored = 0;
    for (const m of this.segments) {
      const from = Math.max(m.baseSeq, this.acks.ackedSeq + 1);
      if (m.lastSeq >= from) stored += m.lastSeq - from + 1 - this.acks.countDoneIn(from, m.lastSeq);
    }
    const backlogPackets = stored + this.pending.length;
    return {
      ...this.counters, fresh: this.fresh, lastSeq: this.lastSeq, ackedSeq: this.acks.ackedSeq, durableAckedSeq: this.durableAckedSeq, backlogPackets,
      storeBytes: this.storeBytes(), dropped: { ...this.dropped }, recovery: { ...this.recovery }, segments: this.segments.length,
    };
  }

  /** Bytes of the segments that still hold backlog packets, and of appends not yet written: an upper bound (acked records in those segments count too). */
  backlogBytes(): number {
    let bytes = this.pendingBytes;
    for (const m of this.segments) {
      const from = Math.max(m.baseSeq, this.acks.ackedSeq + 1);
      if (m.lastSeq >= from && m.lastSeq - from + 1 > this.acks.countDoneIn(from, m.lastSeq)) bytes += m.bytes;
    }
    return bytes;
  }

  /**
   * The oldest packet neither acked nor dropped (its seq and ts), or null with no backlog. Kept
   * until it is acked, so asking again costs nothing; else found in memory, or on flash by a
   * cursor of its own (the link's stays where it is), reading at most to that packet.
   */
  async oldestBacklog(): Promise<{ seq: number; ts: number } | null> {
    if (this.closed) throw closedError();
    if (this.head && this.head.seq > this.acks.ackedSeq && !this.acks.isDone(this.head.seq)) return this.head;
    const p = await firstUnacked({ acks: this.acks, cache: this.tailCache, segments: [...this.segments], files: this.files })
      ?? this.pending.find((x) => !this.acks.isDone(x.packet.seq))?.packet;
    this.head = p ? { seq: p.seq, ts: p.ts } : null;
    return this.head;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.cancelFlushTimer();
    if (this.ackTimer !== null) {
      this.clock.clearTimeout(this.ackTimer);
      this.ackTimer = null;
    }
    await this.serial(() => this.flush());
    this.closed = true;
    await this.writeChain;
    this.resetCursor();
    await this.deletions;
    await this.active?.fh.close();
    await this.deadLetterLog.close();
    await this.unlock();
  }
}

/** Folds packets just made durable into a segment's summary. */
function summarize(m: { lastSeq: number; packets: number; maxPriority: number }, packets: Packet[]): void {
  for (const p of packets) {
    m.lastSeq = p.seq;
    m.packets++;
    m.maxPriority = Math.max(m.maxPriority, p.priority ?? 0);
  }
}

function closedError(): FerryError {
  return new FerryError(ErrorCode.STORE_CLOSED, 'store is closed');
}

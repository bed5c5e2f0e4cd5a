/**
 * The `file` handler: appends one JSON line per packet ({agent, seq, target, ts, data}; bytes as
 * {"base64": ...}). Lines from packets handed over together share one write and, with `sync:
 * always`, one fdatasync before any of them resolves ok (group commit).
 *
 * Rotation (`rotateBytes`): before a line would take the file past `rotateBytes`, NAME becomes
 * NAME.1 (NAME.1 becomes NAME.2 …, NAME.KEEP is deleted) and a new NAME is started; a line longer
 * than `rotateBytes` gets a file of its own. With `sync: always` the renames and the new file are
 * made durable (directory fsync) before a line in the new file resolves ok, so a crash at any
 * point leaves every acknowledged line in exactly one file.
 *
 * De-duplication by (agent, seq), exactly: a packet whose (agent, seq) was written is acknowledged
 * without writing it again, so a packet re-dispatched after a gateway crash (written but not yet
 * recorded as dispatched) lands once. Exact, not a high mark per agent: lanes let one target's
 * higher seqs overtake another's lower ones. The sets come from scanning the current file and
 * NAME.1 at open plus `.NAME.seqs`, which rotation saves before it renames anything; so they
 * outlive deleted rotated files. They are range sets: one range per run of seqs written without a
 * gap, so an agent whose packets all come here costs one range.
 *
 * Failures. A batch is written whole (`writeAll`) and synced, or it fails: then the file is cut
 * back to where the batch began, and that packet and every packet queued with or after it get a
 * retryable HANDLER_FAILED, so nothing later is ever written before something earlier, and no
 * seq is marked before its line is on disk. If the cut fails too, the file is marked as needing
 * recovery: before the next write it is scanned again as at open (whole lines are learnt, a torn
 * last line is cut, and with `sync: always` the result is synced before anything is acknowledged
 * from it), and if that fails the next batch fails with it.
 */
import { dirname } from 'node:path';
import { syncDirChain, writeFileAtomic } from '../../common/durable-file.js';
import type { FileHandle, Files } from '../../common/files.js';
import { realFiles } from '../../common/real-files.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { bytesAsBase64 } from '../../protocol/packet.js';
import { isMarked, mark, readOlderMarks, rotate, scanLines, type SeqMarks } from './file-rotation.js';
import type { DispatchPacket, Handler, HandlerResult } from './handler.js';
import { prepareOutputDir } from './file-dir.js';

export interface FileHandlerOptions {
  path: string;
  /** `always` (default): fdatasync before `handle` resolves; `none` skips it (tests only) */
  sync?: 'always' | 'none';
  retryAfterMs?: number;
  /** Rotate before the file would grow past this many bytes; no rotation when absent. */
  rotateBytes?: number;
  /** Rotated files kept, NAME.1 (newest) to NAME.KEEP (default 5). */
  keep?: number;
  /** where the files live; default realFiles */
  files?: Files;
  /**
   * The gateway's dispatch floor for an agent (every seq up to it is recorded as dispatched, or
   * let go by the agent, and is never handed over again). Marks at or below it are forgotten, so
   * the exact marks stay a few ranges per agent even when the agent's other seqs go to other
   * routes. Absent: nothing is forgotten.
   */
  floorOf?: (agent: string) => number;
}

interface Queued {
  agent: string;
  seq: number;
  line: Buffer;
  resolve: (r: HandlerResult) => void;
}

/**
 * The output is for other programs on the gateway host (a log shipper in the gateway's group),
 * never for everyone: 0640, and its directory 0750 when this handler creates it (file-dir.ts), whatever the umask.
 */
const outputFileMode = 0o640;

export class FileHandler implements Handler {
  readonly kind = 'file';
  /** Lines are appended in call order whatever the depth, so the gateway may pipeline freely. */
  readonly inflightMax = 1024;
  /** Undefined between a rotation's rename and the opening of the new file (retried by the next flush). */
  private fh: FileHandle | undefined;
  private fileBytes = 0;
  /** a failed write could not be cut back: rescan the file before the next write */
  private needsRecovery = false;
  private written: SeqMarks = new Map();
  private readonly queuedByKey = new Map<string, Promise<HandlerResult>>();
  private queue: Queued[] = [];
  private flushing = false;
  private closed = false;
  private readonly keep: number;
  private readonly files: Files;

  private constructor(private readonly opts: FileHandlerOptions) {
    this.keep = opts.keep ?? 5;
    this.files = opts.files ?? realFiles;
    const bad = (v: number | undefined): boolean => v !== undefined && (!Number.isInteger(v) || v <= 0);
    if (bad(opts.rotateBytes) || bad(this.keep)) throw new FerryError(ErrorCode.CONFIG_INVALID, `file handler: rotateBytes and keep must be positive integers, got ${opts.rotateBytes} and ${opts.keep}`);
  }

  static async open(opts: FileHandlerOptions): Promise<FileHandler> {
    const h = new FileHandler(opts);
    await prepareOutputDir(h.files, opts.path);
    await syncDirChain(h.files, dirname(opts.path));
    try {
      h.written = await readOlderMarks(h.files, opts.path, h.keep);
      h.fh = await h.openAppend();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // A path that names a directory, or a file this user may not write: the route's setting is at fault.
      if (code === undefined || err instanceof FerryError) throw err;
      throw new FerryError(ErrorCode.CONFIG_INVALID, `file handler ${opts.path}: cannot open it to append (${code})`, { cause: err });
    }
    try {
      await h.recover(h.fh);
      // NAME may be new: its directory entry must outlive a power cut like the lines in it.
      if (h.opts.sync !== 'none') await h.files.syncDir(dirname(opts.path));
    } catch (err) {
      await h.fh.close().catch(() => undefined);
      throw err;
    }
    return h;
  }

  /**
   * Learns the seqs of the current file; cuts a last line without its newline (a torn write), and
   * everything from a line with a zero byte on (sectors a power cut left unwritten: what follows
   * them was never acknowledged and may have lost an earlier line of its target, see scanLines);
   * whole lines cut are kept in NAME.cut.OFFSET.
   * With `sync: always` it syncs what it found, since lines it learns are acknowledged from now on
   * without being written again (after a kill they may still be only in the page cache).
   */
  private async recover(fh: FileHandle): Promise<void> {
    const size = await fh.size();
    const goodBytes = await scanLines(this.files, this.opts.path, this.written, size, true);
    if (goodBytes < size) {
      const cut = Buffer.alloc(size - goodBytes);
      let off = 0;
      for (let n = -1; n !== 0 && off < cut.length; off += n) n = await fh.read(cut, off, cut.length - off, goodBytes + off);
      // More than a torn last line: whole lines go (zeros a power cut left, and what followed). A
      // file an older ferry wrote may hold such a hole with acknowledged lines after it: they are
      // kept, durably, beside the output (NAME.cut.OFFSET), never just deleted.
      if (cut.subarray(0, off).includes(10)) await writeFileAtomic(this.files, `${this.opts.path}.cut.${goodBytes}`, cut.subarray(0, off));
      await fh.truncate(goodBytes);
    }
    if (this.opts.sync !== 'none') await fh.datasync();
    this.fileBytes = goodBytes;
    this.needsRecovery = false;
    this.prune([...this.written.keys()]);
  }

  /** Ranges of (agent, seq) marks held in memory, over all agents (what `floorOf` keeps small). */
  get markedRanges(): number {
    let n = 0;
    for (const set of this.written.values()) n += set.size;
    return n;
  }

  private floorOf(agent: string): number {
    return this.opts.floorOf?.(agent) ?? 0;
  }

  /** Forgets marks at or below each agent's dispatch floor (they are never handed over again). */
  private prune(agents: Iterable<string>): void {
    if (!this.opts.floorOf) return;
    for (const agent of agents) {
      const set = this.written.get(agent);
      if (!set) continue;
      set.dropThrough(this.floorOf(agent));
      if (set.size === 0) this.written.delete(agent);
    }
  }

  handle(p: DispatchPacket): Promise<HandlerResult> {
    if (this.closed) return Promise.resolve(this.failure(new Error('the file handler is closed')));
    if (p.seq <= this.floorOf(p.agent) || isMarked(this.written, p.agent, p.seq)) return Promise.resolve({ ok: true });
    // Queued by a session that handed the same packet over a moment ago: share its outcome.
    const key = `${p.agent}\u0000${p.seq}`;
    const queued = this.queuedByKey.get(key);
    if (queued) return queued;
    const line = Buffer.from(`${JSON.stringify({ agent: p.agent, seq: p.seq, target: p.target, ts: p.ts, data: p.data }, bytesAsBase64)}\n`);
    const result = new Promise<HandlerResult>((resolve) => {
      this.queue.push({ agent: p.agent, seq: p.seq, line, resolve });
      if (!this.flushing) void this.flush();
    });
    this.queuedByKey.set(key, result);
    void result.then(() => this.queuedByKey.delete(key));
    return result;
  }

  private failure(err: Error): HandlerResult {
    return { ok: false, retryable: true, code: ErrorCode.HANDLER_FAILED, message: `file ${this.opts.path}: ${err.message}`, retryAfterMs: this.opts.retryAfterMs ?? 1000 };
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    await new Promise((r) => setImmediate(r)); // let packets handed over in the same tick join the batch
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      let done = 0;
      try {
        while (done < batch.length) done = await this.writeChunk(batch, done);
      } catch (err) {
        // Cut what the failed write left; if that fails too, rescan before the next write.
        if (this.fh) await this.fh.truncate(this.fileBytes).catch(() => (this.needsRecovery = true));
        const failed = [...batch.slice(done), ...this.queue];
        this.queue = [];
        const result = this.failure(err as Error);
        for (const q of failed) q.resolve(result);
      }
    }
    this.flushing = false;
  }

  /** Writes (and syncs) the lines from `from` on that fit the current file, or rotates; returns the index of the next unwritten line. */
  private async writeChunk(batch: Queued[], from: number): Promise<number> {
    const fh = await this.ensureOpen();
    if (this.needsRecovery) {
      await this.recover(fh);
      // Lines the failed write left whole are now known: their packets are done, not written again.
      for (const q of batch.splice(from)) {
        if (isMarked(this.written, q.agent, q.seq)) q.resolve({ ok: true });
        else batch.push(q);
      }
      if (from === batch.length) return from;
    }
    const max = this.opts.rotateBytes ?? Infinity;
    let to = from;
    let bytes = 0;
    // The first line into an empty file always fits: a line longer than rotateBytes gets its own file.
    while (to < batch.length && (this.fileBytes + bytes === 0 || this.fileBytes + bytes + batch[to]!.line.length <= max)) bytes += batch[to++]!.line.length;
    if (to === from) {
      await this.rotateNow(fh);
      return from;
    }
    const buf = Buffer.concat(batch.slice(from, to).map((q) => q.line), bytes);
    await fh.writeAll(buf, null);
    if (this.opts.sync !== 'none') await fh.datasync();
    this.fileBytes += bytes;
    const agents = new Set<string>();
    for (let i = from; i < to; i++) {
      const q = batch[i]!;
      mark(this.written, q.agent, q.seq);
      agents.add(q.agent);
      q.resolve({ ok: true });
    }
    this.prune(agents);
    return to;
  }

  private async rotateNow(fh: FileHandle): Promise<void> {
    await rotate(this.files, this.opts.path, this.keep, this.written);
    // The rename happened: `fh` now names NAME.1 and must not take another line.
    this.fh = undefined;
    this.fileBytes = 0;
    await fh.close();
  }

  /** Opens NAME if a rotation left none open; with `sync: always` its directory entry (and the renames before it) are made durable first. */
  private async ensureOpen(): Promise<FileHandle> {
    if (this.fh) return this.fh;
    const fh = await this.openAppend();
    try {
      this.fileBytes = await fh.size();
      if (this.opts.sync !== 'none') await this.files.syncDir(dirname(this.opts.path));
    } catch (err) {
      await fh.close();
      throw err;
    }
    this.fh = fh;
    return fh;
  }

  /** NAME for appending, created if missing (O_APPEND, as 'a+'). */
  private openAppend(): Promise<FileHandle> {
    return this.files.open(this.opts.path, { create: true, append: true, mode: outputFileMode });
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await new Promise((r) => setTimeout(r, 5));
    await this.fh?.close();
    this.fh = undefined;
  }
}

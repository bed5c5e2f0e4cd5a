/**
 * The agent's durable answered-message record (the AnsweredLog of consumer.ts): the verdicts on
 * the last `idsMax` downlink messages, so a message the gateway sends again (its DOWN_ACK was
 * lost, or this agent restarted before sending it) is answered from here and never handed to a
 * consumer twice.
 *
 * On disk: DIR/answered.log, an append-only file of CRC-framed records (common/record.ts), each a
 * CBOR DownResult. `record` resolves once its record is written and datasynced; verdicts recorded
 * in the same turn of the event loop share one write and one sync (group commit). In memory: a Map
 * in insertion order (a verdict recorded again moves to the end), cut to the newest `idsMax`.
 *
 * Compaction: once the file holds 2 × idsMax records, the newest idsMax are written to a new file
 * that replaces it atomically (writeFileAtomic: temporary file, fsync, rename, directory fsync),
 * so the file stays between idsMax and 2 × idsMax records and each record is rewritten at most
 * once per idsMax appended. The new file's contents come from memory, which holds exactly what
 * `get` answers: nothing `get` knows is lost by it.
 *
 * Failures. A batch is written whole or `record` rejects for each of its verdicts (the inbox then
 * sends no answer and the gateway sends the message again): the file is cut back to the end of
 * the last whole record, and memory learns a verdict only after its write and sync resolved. If
 * the cut or a compaction fails, the handle is dropped and the next batch reopens the file by its
 * path, as at open: read it, learn its valid records, cut a torn tail, fsync the directory. (Whole
 * records of a rejected batch may then be learned: their consumer did take the verdict, so
 * knowing them only saves a second delivery.) A failed compaction is tried again only after
 * another idsMax records, so a full disk does not turn every batch into a rewrite.
 *
 * Memory and disk: idsMax × (ID + verdict); a refusal's reason is at most 1,000 characters
 * (inbox.ts), so the default 4,096 IDs take well under a megabyte even if all were refusals.
 */
import { join } from 'node:path';
import { Decoder, Encoder } from 'cbor-x';
import { mkdirDurable, writeFileAtomic } from '../../common/durable-file.js';
import type { FileHandle, Files } from '../../common/files.js';
import type { Log } from '../../common/log.js';
import { frameRecord, recordBodyBytesMax } from '../../common/record.js';
import { scanRecordFile } from '../../common/record-file.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import type { DownResult } from '../../protocol/frames.js';
import type { AnsweredLog } from './consumer.js';

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true });

export const answeredFileName = 'answered.log';

/** The file is read in pieces of about this at open. */
const answeredIoChunkBytes = 1024 * 1024;

export interface AnsweredLogOptions {
  /** the directory of answered.log (the agent: DATADIR/downlink); created if absent */
  dir: string;
  files: Files;
  /** message IDs remembered (config downlink.dedupIdsMax) */
  idsMax: number;
  log: Log;
}

interface Pending {
  result: DownResult;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** A record body as read back: a DownResult, or undefined when it is not one (another version's record). */
function decodeResult(body: Buffer): DownResult | undefined {
  let v: unknown;
  try {
    v = cborDecoder.decode(body);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const r = v as Record<string, unknown>;
  if (typeof r.id !== 'string') return undefined;
  if (r.ok === true) return { id: r.id, ok: true };
  if (r.ok === false && typeof r.code === 'string' && typeof r.reason === 'string') return { id: r.id, ok: false, code: r.code, reason: r.reason };
  return undefined;
}

export class DurableAnsweredLog implements AnsweredLog {
  private readonly byId = new Map<string, DownResult>();
  /** undefined after a failed cut or compaction: the next batch reopens the file first */
  private fh: FileHandle | undefined;
  /** where the last whole record ends; nothing after it is trusted */
  private fileBytes = 0;
  /** whole records in the file */
  private fileRecords = 0;
  /** compact once the file holds this many records */
  private compactAtRecords: number;
  private pending: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private closed = false;
  /** batches written (each one write and one sync), and compactions done: for tests and stats */
  syncs = 0;
  compactions = 0;

  private constructor(private readonly opts: AnsweredLogOptions) {
    this.compactAtRecords = 2 * opts.idsMax;
  }

  static async open(opts: AnsweredLogOptions): Promise<DurableAnsweredLog> {
    if (!Number.isInteger(opts.idsMax) || opts.idsMax < 1) throw new FerryError(ErrorCode.CONFIG_INVALID, `answered log: idsMax must be a positive integer, got ${opts.idsMax}`);
    const a = new DurableAnsweredLog(opts);
    await mkdirDurable(opts.files, opts.dir);
    // A compaction's temporary file left by a crash: never read, only in the way.
    await opts.files.unlink(`${a.path}.tmp`).catch(() => undefined);
    await a.reopen();
    return a;
  }

  get path(): string {
    return join(this.opts.dir, answeredFileName);
  }

  get(id: string): DownResult | undefined {
    return this.byId.get(id);
  }

  get size(): number {
    return this.byId.size;
  }

  record(result: DownResult): Promise<void> {
    if (this.closed) return Promise.reject(new FerryError(ErrorCode.INTERNAL, 'answered log: closed'));
    return new Promise((resolve, reject) => {
      this.pending.push({ result, resolve, reject });
      if (!this.flushing) this.flushing = this.flushLoop();
    });
  }

  /** Waits for the verdicts being written, then closes the file; later `record`s reject. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flushing;
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }

  /** Opens the file by its path, learns its valid records, cuts a torn tail, makes the entry durable. */
  private async reopen(): Promise<void> {
    const { files, log } = this.opts;
    const fh = await files.open(this.path, { create: true, append: true });
    try {
      const size = await fh.size();
      // Read again before a CRC failure counts (common/record-file.ts): one cut of a bit flipped on
      // the way forgot a verdict, and a repeat reached its consumer twice (sim seed 1477655837).
      const bodies: Buffer[] = [];
      const validBytes = await scanRecordFile(fh, size, { recordBodyBytesMax, ioChunkBytes: answeredIoChunkBytes, what: `answered log: ${this.path}` }, (body) => void bodies.push(body));
      if (validBytes < size) {
        log.warn('answered log: cut a torn tail', { path: this.path, bytes: size - validBytes });
        await fh.truncate(validBytes);
        await fh.datasync();
      }
      // A new file, or a compaction's rename whose directory sync did not happen, must survive a power cut.
      await files.syncDir(this.opts.dir);
      this.byId.clear();
      for (const body of bodies) {
        const r = decodeResult(body);
        if (r) this.learn(r);
      }
      this.fileBytes = validBytes;
      this.fileRecords = bodies.length;
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    this.fh = fh;
  }

  private learn(r: DownResult): void {
    this.byId.delete(r.id);
    this.byId.set(r.id, r);
    while (this.byId.size > this.opts.idsMax) this.byId.delete(this.byId.keys().next().value!);
  }

  private async flushLoop(): Promise<void> {
    // One turn, so verdicts recorded together share the write and the sync.
    await new Promise((r) => setImmediate(r));
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        await this.append(Buffer.concat(batch.map((p) => frameRecord(cbor.encode(p.result)))));
      } catch (err) {
        for (const p of batch) p.reject(err);
        continue;
      }
      for (const p of batch) this.learn(p.result);
      this.fileRecords += batch.length;
      for (const p of batch) p.resolve();
      if (this.fileRecords >= this.compactAtRecords) await this.compact();
    }
    this.flushing = null;
  }

  /** Writes `buf` whole after the last whole record and syncs it, or cuts the file back and throws. */
  private async append(buf: Buffer): Promise<void> {
    if (!this.fh) await this.reopen();
    const fh = this.fh!;
    try {
      await fh.writeAll(buf, null);
      await fh.datasync();
    } catch (err) {
      await fh.truncate(this.fileBytes).catch((cutErr: unknown) => {
        this.opts.log.error('answered log: could not cut a failed write; reopening before the next one', { err: cutErr });
        this.drop();
      });
      throw err;
    }
    this.syncs++;
    this.fileBytes += buf.length;
  }

  /** Rewrites the file as the verdicts memory holds (the newest idsMax), atomically. */
  private async compact(): Promise<void> {
    const records = [...this.byId.values()].map((r) => frameRecord(cbor.encode(r)));
    const buf = Buffer.concat(records);
    try {
      await writeFileAtomic(this.opts.files, this.path, buf);
    } catch (err) {
      // The handle may name a file the rename replaced: drop it; the next batch reopens by path.
      this.drop();
      this.compactAtRecords = this.fileRecords + this.opts.idsMax;
      this.opts.log.error('answered log: compaction failed; trying again later', { err });
      return;
    }
    this.compactions++;
    // The old handle names the replaced file: appends go to the new one.
    this.drop();
    this.fileBytes = buf.length;
    this.fileRecords = records.length;
    this.compactAtRecords = 2 * this.opts.idsMax;
  }

  /** Drops the handle (closing it quietly): the next batch reopens the file by its path. */
  private drop(): void {
    const fh = this.fh;
    this.fh = undefined;
    void fh?.close().catch(() => undefined);
  }
}

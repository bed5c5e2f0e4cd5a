/**
 * The `file` handler: appends one JSON line per packet ({agent, seq, target, ts, data}; bytes as
 * {"base64": ...}). Lines from packets handed over together share one write and one fdatasync.
 * It is idempotent by (agent, seq): on open it reads the file to learn the highest seq per agent
 * and skips packets at or below it, so a packet re-dispatched after a gateway crash (written, but
 * not yet recorded as dispatched) lands in the file once. A write that fails fails every packet
 * queued with or after it, so nothing later is ever written before something earlier.
 */
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { dirname } from 'node:path';
import { ErrorCode } from '../../protocol/errors.js';
import { dataToJson } from '../../protocol/packet.js';
import type { DispatchPacket, Handler, HandlerResult } from './handler.js';

export interface FileHandlerOptions {
  path: string;
  /** `none` skips the fdatasync (tests only) */
  sync?: 'always' | 'none';
  retryAfterMs?: number;
}

interface Queued {
  agent: string;
  seq: number;
  line: string;
  resolve: (r: HandlerResult) => void;
}

export class FileHandler implements Handler {
  readonly kind = 'file';
  private fh!: FileHandle;
  private fileBytes = 0;
  private readonly written = new Map<string, number>();
  private readonly queuedByKey = new Map<string, Promise<HandlerResult>>();
  private queue: Queued[] = [];
  private flushing = false;

  private constructor(private readonly opts: FileHandlerOptions) {}

  static async open(opts: FileHandlerOptions): Promise<FileHandler> {
    const h = new FileHandler(opts);
    await mkdir(dirname(opts.path), { recursive: true });
    h.fh = await open(opts.path, 'a+');
    await h.recover();
    return h;
  }

  /** Learns the highest seq per agent; cuts a last line without its newline (a torn write). */
  private async recover(): Promise<void> {
    let goodBytes = 0;
    const lines = createInterface({ input: createReadStream(this.opts.path), crlfDelay: Infinity });
    const { size } = await this.fh.stat();
    for await (const line of lines) {
      const lineEnd = goodBytes + Buffer.byteLength(line) + 1;
      if (lineEnd > size) break;
      goodBytes = lineEnd;
      try {
        const v = JSON.parse(line) as { agent?: unknown; seq?: unknown };
        if (typeof v.agent === 'string' && typeof v.seq === 'number' && v.seq > (this.written.get(v.agent) ?? 0)) this.written.set(v.agent, v.seq);
      } catch {
        /* not ours: leave it */
      }
    }
    if (goodBytes < size) await this.fh.truncate(goodBytes);
    this.fileBytes = goodBytes;
  }

  handle(p: DispatchPacket): Promise<HandlerResult> {
    if (p.seq <= (this.written.get(p.agent) ?? 0)) return Promise.resolve({ ok: true });
    // Queued by a session that handed the same packet over a moment ago: share its outcome.
    const key = `${p.agent}\u0000${p.seq}`;
    const queued = this.queuedByKey.get(key);
    if (queued) return queued;
    const line = `${JSON.stringify({ agent: p.agent, seq: p.seq, target: p.target, ts: p.ts, data: dataToJson(p.data) })}\n`;
    const result = new Promise<HandlerResult>((resolve) => {
      this.queue.push({ agent: p.agent, seq: p.seq, line, resolve });
      if (!this.flushing) void this.flush();
    });
    this.queuedByKey.set(key, result);
    void result.then(() => this.queuedByKey.delete(key));
    return result;
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    await new Promise((r) => setImmediate(r));
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      const buf = Buffer.from(batch.map((q) => q.line).join(''));
      try {
        await this.fh.write(buf, 0, buf.length, null);
        if (this.opts.sync !== 'none') await this.fh.datasync();
        this.fileBytes += buf.length;
      } catch (err) {
        await this.fh.truncate(this.fileBytes).catch(() => undefined);
        const failed = [...batch, ...this.queue];
        this.queue = [];
        const result: HandlerResult = { ok: false, retryable: true, code: ErrorCode.HANDLER_FAILED, message: `file ${this.opts.path}: ${(err as Error).message}`, retryAfterMs: this.opts.retryAfterMs ?? 1000 };
        for (const q of failed) q.resolve(result);
        continue;
      }
      for (const q of batch) {
        if (q.seq > (this.written.get(q.agent) ?? 0)) this.written.set(q.agent, q.seq);
        q.resolve({ ok: true });
      }
    }
    this.flushing = false;
  }

  async close(): Promise<void> {
    while (this.flushing) await new Promise((r) => setTimeout(r, 5));
    await this.fh.close();
  }
}

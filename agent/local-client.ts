/**
 * One client of the local API (agent/local-api.ts): splits its bytes into request lines, answers
 * them in order, and keeps what it queues for the client bounded. A client that writes requests
 * and does not read the replies (23 MiB of `stats` requests once took an agent from 74 MiB to
 * 2.3 GiB) is no longer read from once `replyQueueBytesHigh` bytes of replies wait for it, starts
 * no new request while that lasts, and is ended (PEER_NOT_READING, in the agent's log) when it
 * takes none of them for `replyStallMs`, or at once when more would be queued past
 * `replyQueueBytesMax`. Requests are handled up to `requestsInFlightMax` at a time (sends resolve
 * when durable, so several in flight share a sync); lines read and not yet started wait while the
 * socket is paused, so they are at most one read's worth.
 */
import type { Socket } from 'node:net';
import type { Clock } from '../common/clock.js';
import type { Log } from '../common/log.js';
import { ErrorCode } from '../protocol/errors.js';

export interface LocalClientLimits {
  /** a request line longer than this (bytes, without its newline) is refused and the connection closed */
  lineBytesMax: number;
  /** reply bytes waiting for the client past which its requests are no longer read or started */
  replyQueueBytesHigh: number;
  /** a reply that would be queued while more than this already waits ends the client at once */
  replyQueueBytesMax: number;
  /** paused with none of its replies taken for this long: the client is ended */
  replyStallMs: number;
  /** requests being handled at once */
  requestsInFlightMax: number;
}

export interface LocalClientDeps {
  clock: Clock;
  log: Log;
  /** answers one request line of this client (never rejects) */
  handle(line: string, client: LocalClient): Promise<object>;
  /** the over-long line's answer */
  lineTooLong(): object;
  /** called on every reply with the bytes queued for this client, for the API's counters */
  onQueued(bytes: number): void;
  /** called once, when the client is ended for not reading */
  onEnded(): void;
}

/** What waits to be started: a request line, or the refusal of an over-long one (then the end). */
type Waiting = { line: string } | { tooLong: true };

export class LocalClient {
  private parts: Buffer[] = [];
  private partBytes = 0;
  private readonly waiting: Waiting[] = [];
  private inFlight = 0;
  /** replies go out in request order: each waits for the one before */
  private chain: Promise<void> = Promise.resolve();
  private refusedLine = false;
  private done = false;
  private paused = false;
  private stallTimer: unknown = null;
  /** bytes handed to the socket since the start; minus writableLength, what the client took */
  private writtenBytes = 0;

  constructor(private readonly socket: Socket, private readonly limits: LocalClientLimits, private readonly deps: LocalClientDeps) {
    // 'drain' only comes after a write the socket called full: a high mark below its own would never resume.
    this.limits = { ...limits, replyQueueBytesHigh: Math.max(limits.replyQueueBytesHigh, socket.writableHighWaterMark) };
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('drain', () => this.pump());
    socket.on('close', () => {
      this.done = true;
      this.clearStall();
    });
  }

  /**
   * Queues a line the client did not ask for (a downlink message for a subscriber), after the
   * replies to requests already started, so a `subscribe`'s own reply always comes first. False
   * when the client is gone.
   */
  push(line: object): boolean {
    if (this.done || this.socket.destroyed) return false;
    this.chain = this.chain.then(() => this.reply(line));
    return true;
  }

  /** Ends the connection now (the agent is stopping). */
  destroy(): void {
    this.done = true;
    this.clearStall();
    this.socket.destroy();
  }

  /** bytes of replies waiting for the client */
  queuedBytes(): number {
    return this.socket.writableLength;
  }

  private read(chunk: Buffer): void {
    if (this.refusedLine || this.done) return;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      const end = nl < 0 ? chunk.length : nl;
      this.parts.push(chunk.subarray(start, end));
      this.partBytes += end - start;
      if (this.partBytes > this.limits.lineBytesMax) {
        // Ignore what follows; answer after what came before; then close.
        this.refusedLine = true;
        this.parts = [];
        this.waiting.push({ tooLong: true });
        break;
      }
      if (nl < 0) break;
      this.waiting.push({ line: Buffer.concat(this.parts, this.partBytes).toString('utf8') });
      this.parts = [];
      this.partBytes = 0;
      start = nl + 1;
    }
    // Keep a copy of a partial line, not a view holding the whole chunk.
    if (this.parts.length > 0) this.parts = [Buffer.from(Buffer.concat(this.parts, this.partBytes))];
    this.pump();
  }

  /** Starts what may start now; reads more only once everything read has started. */
  private pump(): void {
    if (this.done) return;
    const over = this.queuedBytes() > this.limits.replyQueueBytesHigh;
    while (!over && this.inFlight < this.limits.requestsInFlightMax && this.waiting.length > 0) this.start(this.waiting.shift()!);
    if (this.waiting.length > 0) this.pauseReading();
    else this.resumeReading();
    if (over) this.watchStall();
    else this.clearStall();
  }

  private start(w: Waiting): void {
    this.inFlight++;
    const answer = 'line' in w ? this.deps.handle(w.line, this) : Promise.resolve(this.deps.lineTooLong());
    this.chain = this.chain.then(async () => {
      const res = await answer;
      this.inFlight--;
      this.reply(res);
      if ('tooLong' in w) {
        this.done = true;
        this.socket.end();
        this.deps.clock.setTimeout(() => this.socket.destroy(), 1000);
        return;
      }
      this.pump();
    });
  }

  private reply(res: object): void {
    if (this.done || this.socket.destroyed) return;
    const queued = this.queuedBytes();
    if (queued > this.limits.replyQueueBytesMax) {
      this.end(`${queued} bytes of replies wait for the client, over replyQueueBytesMax ${this.limits.replyQueueBytesMax}`);
      return;
    }
    const text = `${JSON.stringify(res)}\n`;
    this.writtenBytes += Buffer.byteLength(text);
    this.socket.write(text);
    this.deps.onQueued(this.queuedBytes());
  }

  private pauseReading(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket.pause();
  }

  private resumeReading(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket.resume();
  }

  /** Over the high mark: the client must take some of its replies every replyStallMs. */
  private watchStall(): void {
    if (this.stallTimer !== null) return;
    let takenBefore = this.taken();
    const check = (): void => {
      this.stallTimer = null;
      if (this.done || this.queuedBytes() <= this.limits.replyQueueBytesHigh) return;
      const taken = this.taken();
      if (taken === takenBefore) {
        this.end(`the client read none of the ${this.queuedBytes()} bytes of replies queued for it in ${this.limits.replyStallMs} ms`);
        return;
      }
      takenBefore = taken;
      this.stallTimer = this.deps.clock.setTimeout(check, this.limits.replyStallMs);
    };
    this.stallTimer = this.deps.clock.setTimeout(check, this.limits.replyStallMs);
  }

  private clearStall(): void {
    if (this.stallTimer !== null) this.deps.clock.clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }

  private taken(): number {
    return this.writtenBytes - this.socket.writableLength;
  }

  /** Ends a client that does not read: drops its replies (a last line would wait behind them). */
  private end(why: string): void {
    if (this.done) return;
    this.done = true;
    this.clearStall();
    this.waiting.length = 0;
    this.deps.log.warn('local-api: client ended', { code: ErrorCode.PEER_NOT_READING, reason: why });
    this.deps.onEnded();
    this.socket.destroy();
  }
}

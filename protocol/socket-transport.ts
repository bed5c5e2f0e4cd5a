import type { Socket } from 'node:net';
import { realClock, type Clock } from '../common/clock.js';
import { encodeFrame, FrameDecoder } from './codec.js';
import { ErrorCode, FerryError, isFerryError } from './errors.js';
import { FrameType, type Frame } from './frames.js';
import type { PeerInfo, Transport } from './transport.js';

/**
 * How much one connection may queue for a peer that does not read. Each side's writes are bounded
 * otherwise (the agent's by the gateway's credit, the gateway's by the packets it holds), except
 * the answers a peer can ask for without reading them (PONGs): these limits bound those too.
 */
export interface WriteLimits {
  /** past this many bytes waiting for the socket, reading pauses (no more requests, so no more answers) until the queue drains */
  writeQueueBytesHigh: number;
  /** past this, the connection is ended at once with PEER_NOT_READING, without a BYE (it could not get through) */
  writeQueueBytesMax: number;
  /** paused with none of the queue written for this long: the connection is ended with PEER_NOT_READING */
  writeStallMs: number;
}

/**
 * The defaults, for the agent's side: above anything the gateway's credit lets the agent queue
 * (its sessionQueueBytesMax, 8 MiB by default), so an agent on a slow link never pauses its
 * reading of ACKs. The gateway passes its own, smaller limits (gateway/config.ts).
 */
export const writeLimitsDefault: WriteLimits = { writeQueueBytesHigh: 16 * 1024 * 1024, writeQueueBytesMax: 64 * 1024 * 1024, writeStallMs: 60_000 };

export interface SocketTransportOptions extends Partial<WriteLimits> {
  frameBytesMax?: number;
  /** the first frame's limit (the gateway's HELLO: protocol/limits.ts helloFrameBytesMax) */
  firstFrameBytesMax?: number;
  peer?: PeerInfo;
  /** for the write-stall timer (default: the real clock) */
  clock?: Clock;
}

export interface SocketTransportStats {
  /** bytes queued and not yet taken by the OS */
  writeQueueBytes: number;
  /** the most writeQueueBytes ever was */
  writeQueueBytesPeak: number;
  /** reading is paused until the write queue drains */
  readingPaused: boolean;
}

/**
 * Frames over one TCP socket: length-prefixed CBOR both ways. Used by the agent and the gateway.
 * Frames sent in one turn of the event loop go to the socket as one write (a flood of small
 * answers costs its bytes, not a write request each).
 */
export class SocketTransport implements Transport {
  private readonly decoder: FrameDecoder;
  private readonly limits: WriteLimits;
  private readonly clock: Clock;
  private listeners: ((f: Frame) => void)[] = [];
  private done = false;
  private resolveClosed!: (err: Error | undefined) => void;
  readonly closed: Promise<Error | undefined>;
  readonly peer?: PeerInfo;
  private outbox: Buffer[] = [];
  private outboxBytes = 0;
  private flushQueued = false;
  /** bytes handed to the socket since the start; minus writableLength, what the OS took */
  private writtenBytes = 0;
  private peak = 0;
  private paused = false;
  private stallTimer: unknown = null;

  constructor(private readonly socket: Socket, opts: SocketTransportOptions = {}) {
    if (opts.peer) this.peer = opts.peer;
    this.decoder = new FrameDecoder(opts);
    this.clock = opts.clock ?? realClock;
    const limits = { ...writeLimitsDefault, ...definedOnly(opts) };
    // 'drain' only comes after a write the socket called full: pausing below its own mark would never end.
    limits.writeQueueBytesHigh = Math.max(limits.writeQueueBytesHigh, socket.writableHighWaterMark);
    this.limits = limits;
    this.closed = new Promise((r) => (this.resolveClosed = r));
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = this.decoder.push(chunk);
      } catch (err) {
        // Tell the peer why (ws gives every protocol violation a close code), then close.
        if (isFerryError(err)) this.send({ t: FrameType.BYE, code: err.code, reason: err.message });
        this.close(err as Error);
        return;
      }
      for (const f of frames) {
        if (this.done) return;
        for (const l of this.listeners) l(f);
      }
    });
    socket.on('drain', () => this.resumeReading());
    socket.on('error', (err) => this.close(err));
    socket.on('close', () => this.close());
  }

  send(frame: Frame): void {
    if (this.done) return;
    const bytes = encodeFrame(frame);
    const queued = this.socket.writableLength + this.outboxBytes + bytes.length;
    if (queued > this.limits.writeQueueBytesMax) {
      return this.abort(new FerryError(ErrorCode.PEER_NOT_READING, `the peer does not read: ${queued} bytes would be queued for it, over writeQueueBytesMax ${this.limits.writeQueueBytesMax}`));
    }
    this.outbox.push(bytes);
    this.outboxBytes += bytes.length;
    this.peak = Math.max(this.peak, queued);
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }

  onFrame(listener: (frame: Frame) => void): void {
    this.listeners.push(listener);
  }

  close(err?: Error): void {
    if (this.done) return;
    this.flush();
    this.done = true;
    this.clearStall();
    // end() lets queued frames (a BYE) reach the peer; destroy after a bound in case it never drains.
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.resolveClosed(err);
  }

  stats(): SocketTransportStats {
    return { writeQueueBytes: this.socket.writableLength + this.outboxBytes, writeQueueBytesPeak: this.peak, readingPaused: this.paused };
  }

  private flush(): void {
    this.flushQueued = false;
    if (this.done || this.outbox.length === 0) return;
    if (this.socket.destroyed || this.socket.writableEnded) {
      // The socket went away under us; 'close' ends the transport.
      this.outbox = [];
      this.outboxBytes = 0;
      return;
    }
    const data = this.outbox.length === 1 ? this.outbox[0]! : Buffer.concat(this.outbox, this.outboxBytes);
    this.outbox = [];
    this.outboxBytes = 0;
    this.writtenBytes += data.length;
    this.socket.write(data);
    if (this.socket.writableLength > this.limits.writeQueueBytesHigh) this.pauseReading();
  }

  /** The peer is behind: read nothing more (its requests would only queue more answers) until the queue drains. */
  private pauseReading(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket.pause();
    let takenBefore = this.taken();
    const check = (): void => {
      this.stallTimer = null;
      if (this.done || !this.paused) return;
      const taken = this.taken();
      if (taken === takenBefore) {
        this.abort(new FerryError(ErrorCode.PEER_NOT_READING, `the peer read none of the ${this.socket.writableLength} bytes queued for it in ${this.limits.writeStallMs} ms`));
        return;
      }
      takenBefore = taken;
      this.stallTimer = this.clock.setTimeout(check, this.limits.writeStallMs);
    };
    this.stallTimer = this.clock.setTimeout(check, this.limits.writeStallMs);
  }

  private resumeReading(): void {
    if (!this.paused || this.done) return;
    this.paused = false;
    this.clearStall();
    this.socket.resume();
  }

  /** Bytes the OS has taken from this connection's queue so far. */
  private taken(): number {
    return this.writtenBytes - this.socket.writableLength;
  }

  private clearStall(): void {
    if (this.stallTimer !== null) this.clock.clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }

  /** Ends the connection at once, dropping what is queued: a BYE would wait behind it. */
  private abort(err: FerryError): void {
    if (this.done) return;
    this.done = true;
    this.clearStall();
    this.outbox = [];
    this.outboxBytes = 0;
    this.socket.destroy();
    this.resolveClosed(err);
  }
}

function definedOnly(o: Partial<WriteLimits>): Partial<WriteLimits> {
  const out: Partial<WriteLimits> = {};
  for (const k of ['writeQueueBytesHigh', 'writeQueueBytesMax', 'writeStallMs'] as const) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

import type { Socket } from 'node:net';
import { encodeFrame, FrameDecoder } from './codec.js';
import type { Frame } from './frames.js';
import type { PeerInfo, Transport } from './transport.js';

/** Frames over one TCP socket: length-prefixed CBOR both ways. Also used by the gateway side. */
export class SocketTransport implements Transport {
  private readonly decoder: FrameDecoder;
  private listeners: ((f: Frame) => void)[] = [];
  private done = false;
  private resolveClosed!: (err: Error | undefined) => void;
  readonly closed: Promise<Error | undefined>;
  readonly peer?: PeerInfo;

  constructor(private readonly socket: Socket, opts: { frameBytesMax?: number; peer?: PeerInfo } = {}) {
    if (opts.peer) this.peer = opts.peer;
    this.decoder = new FrameDecoder(opts);
    this.closed = new Promise((r) => (this.resolveClosed = r));
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = this.decoder.push(chunk);
      } catch (err) {
        this.close(err as Error);
        return;
      }
      for (const f of frames) {
        if (this.done) return;
        for (const l of this.listeners) l(f);
      }
    });
    socket.on('error', (err) => this.close(err));
    socket.on('close', () => this.close());
  }

  send(frame: Frame): void {
    if (this.done) return;
    this.socket.write(encodeFrame(frame));
  }

  onFrame(listener: (frame: Frame) => void): void {
    this.listeners.push(listener);
  }

  close(err?: Error): void {
    if (this.done) return;
    this.done = true;
    // end() lets queued frames (a BYE) reach the peer; destroy after a bound in case it never drains.
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.resolveClosed(err);
  }
}


/**
 * A ferry Transport over one side's BundleChannel: the session above sends and receives frames as
 * over TCP and does not know its frames travel in HTTP bodies. Frames go into the channel as
 * messages (each a frame's CBOR body); the side's driver (the agent's long-poll client, the
 * gateway's long-poll session) moves bundles and hands received messages to `deliver`.
 *
 * No IO of its own. Closing records why and tells the driver (`onClose`), which sends the
 * termination (`end`) in its next body; a termination from the peer closes it with the peer's code.
 */
import { decodeBody as decodeFrameBody, encodeFrameBody } from '../codec.js';
import { ErrorCode, FerryError, isErrorCode } from '../errors.js';
import type { Frame } from '../frames.js';
import type { PeerInfo, Transport } from '../transport.js';
import type { End } from './body.js';
import type { BundleChannel } from './channel.js';
import { endCodeCharsMax, endReasonCharsMax } from './limits.js';

export interface ChannelTransportOptions {
  peer?: PeerInfo;
  /** a frame was queued: the driver may have something to send now */
  onSendable(): void;
  /** the transport closed (either side): the driver sends `end` if it was this side, then stops */
  onClose(err: Error | undefined): void;
  /** sees every frame sent and received (the gateway binds a session to the agent its WELCOME admitted) */
  onTraffic?(dir: 'in' | 'out', frame: Frame): void;
}

/** A termination as an error: the peer's code when it is one of ours (it steers the link's back-off). */
export function endError(end: End, who: string): Error {
  const msg = `${who} ended the long-poll session: ${end.code}: ${end.reason}`;
  return isErrorCode(end.code) ? new FerryError(end.code, msg) : new Error(msg);
}

export class ChannelTransport implements Transport {
  readonly peer?: PeerInfo;
  readonly closed: Promise<Error | undefined>;
  private resolveClosed!: (err: Error | undefined) => void;
  private listeners: ((f: Frame) => void)[] = [];
  private done = false;
  /** the termination this side owes its peer (set by close unless the peer ended first) */
  private endToSend: End | undefined;

  readonly frameBytesMax: number;

  constructor(private readonly channel: BundleChannel, private readonly opts: ChannelTransportOptions) {
    if (opts.peer) this.peer = opts.peer;
    this.frameBytesMax = channel.limits.messageBytesMax;
    this.closed = new Promise((r) => (this.resolveClosed = r));
  }

  get isClosed(): boolean {
    return this.done;
  }

  send(frame: Frame): void {
    if (this.done) return;
    const bytes = encodeFrameBody(frame);
    if (bytes.length > this.channel.limits.messageBytesMax || !this.channel.canSend(bytes.length)) {
      // The session above keeps within credit; only a peer that stopped acknowledging gets here.
      this.close(new FerryError(ErrorCode.LONGPOLL_QUEUE_FULL, `long-poll queue full (${this.channel.stats().queuedMessages} messages not acknowledged by the peer)`));
      return;
    }
    this.channel.send(bytes);
    this.opts.onTraffic?.('out', frame);
    this.opts.onSendable();
  }

  onFrame(listener: (frame: Frame) => void): void {
    this.listeners.push(listener);
  }

  /** The driver hands over messages new to this side, in order. A message that is not a frame ends the session (FRAME_MALFORMED). */
  deliver(messages: readonly Uint8Array[]): void {
    for (const bytes of messages) {
      if (this.done) return;
      let frame: Frame;
      try {
        frame = decodeFrameBody(bytes);
      } catch (err) {
        this.close(err as Error);
        return;
      }
      this.opts.onTraffic?.('in', frame);
      for (const l of this.listeners) l(frame);
    }
  }

  /** The peer's body carried a termination: closed with the peer's code, nothing owed back. */
  peerEnded(end: End): void {
    if (this.done) return;
    this.finish(endError(end, 'peer'));
  }

  close(err?: Error): void {
    if (this.done) return;
    const code = err && 'code' in err && typeof (err as { code: unknown }).code === 'string' && /^[A-Z][A-Z0-9_]*$/.test((err as { code: string }).code) ? (err as { code: string }).code : 'CLOSED';
    this.endToSend = { code: code.slice(0, endCodeCharsMax), reason: (err?.message ?? 'closed').slice(0, endReasonCharsMax) };
    this.finish(err);
  }

  /** The termination to put in the next body, once; undefined when none is owed. */
  takeEnd(): End | undefined {
    const e = this.endToSend;
    this.endToSend = undefined;
    return e;
  }

  private finish(err: Error | undefined): void {
    this.done = true;
    this.listeners = [];
    this.resolveClosed(err);
    this.opts.onClose(err);
  }
}

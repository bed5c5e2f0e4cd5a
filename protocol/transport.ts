import type { Frame } from './frames.js';

/**
 * One connection to the gateway that carries frames. TCP is the first implementation; HTTP
 * long-poll will be the second, and the link above does not know which it has.
 * - `send` queues a frame; frames arrive at the peer in order or the connection fails;
 * - `onFrame` is called for each whole frame received, in order;
 * - `closed` resolves once, when the connection ended for any reason (with the error, if any);
 *   after that `send` does nothing.
 */
/** Who is on the other end, as the transport saw it (the gateway's listener fills it in). */
export interface PeerInfo {
  /** remote IP address */
  address: string;
  /** true when the connection is TLS */
  tls: boolean;
  /** true when the agent's transport is HTTP long-poll (the status says which carrier an agent uses) */
  longpoll?: boolean;
  /** subject CN of the client certificate, present only when the certificate was verified against the configured CA */
  certSubject?: string;
}

export interface Transport {
  /** set on the gateway side */
  readonly peer?: PeerInfo;
  /** the largest frame body this carrier takes (long-poll: a message's limit); undefined: no limit of its own */
  readonly frameBytesMax?: number;
  send(frame: Frame): void;
  onFrame(listener: (frame: Frame) => void): void;
  close(err?: Error): void;
  readonly closed: Promise<Error | undefined>;
}

/** Opens a transport to the gateway; rejects if it cannot connect. */
export type Dialer = () => Promise<Transport>;

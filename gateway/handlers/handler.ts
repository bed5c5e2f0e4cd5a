import type { Packet } from '../../protocol/packet.js';

/** A packet as a handler sees it: the packet plus the agent it came from; (agent, seq) is its identity. */
export interface DispatchPacket extends Packet {
  agent: string;
}

export type HandlerResult =
  | { ok: true }
  /** retryable: the packet stays with the agent and is offered again after `retryAfterMs`. */
  | { ok: false; retryable: true; code: string; message: string; retryAfterMs: number }
  /** permanent: the agent moves the packet to its dead-letter area. */
  | { ok: false; retryable: false; code: string; message: string };

/**
 * What a handler is. The gateway calls `handle` for each packet routed to it, one at a time per
 * agent session and in seq order, and acks the packet to the agent only after `handle` resolved
 * `{ ok: true }` and the gateway recorded the dispatch durably. `handle` must not throw for a
 * failure of its backend: it reports it as a result. A packet may be handed over again after a
 * gateway crash (handled, but not yet recorded); handlers that can de-duplicate by (agent, seq)
 * should, and all others pass the identity on so that consumers can.
 */
export interface Handler {
  readonly kind: string;
  handle(packet: DispatchPacket): Promise<HandlerResult>;
  /** Flushes and releases what the handler holds. */
  close(): Promise<void>;
}

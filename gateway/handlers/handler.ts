import type { Packet } from '../../protocol/packet.js';

/** A packet as a handler sees it: the packet plus the agent it came from; (agent, seq) is its identity. */
export interface DispatchPacket extends Packet {
  agent: string;
}

export type HandlerResult =
  /** delivered: the gateway records the dispatch durably, then acks the packet to the agent. */
  | { ok: true }
  /** retryable: the packet stays with the agent and is offered again after `retryAfterMs`. */
  | { ok: false; retryable: true; code: string; message: string; retryAfterMs: number }
  /** permanent: the agent moves the packet to its dead-letter area (`ferry agent --requeue-dead-letters` offers it again). */
  | { ok: false; retryable: false; code: string; message: string };

/**
 * What a handler is: the gateway's side of one route. docs/handlers.md is the long form.
 *
 * - `handle(packet)` resolves one of three results and never throws or rejects for a failure of
 *   its backend (a throw is treated as a retryable HANDLER_FAILED, but says the handler is broken):
 *   - `{ ok: true }`: the packet is delivered. The gateway then records the dispatch durably and
 *     only after that acks the packet to the agent, which deletes it.
 *   - `{ ok: false, retryable: true, code, message, retryAfterMs }`: not delivered this time; the
 *     packet stays with the agent and is offered again after `retryAfterMs`.
 *   - `{ ok: false, retryable: false, code, message }`: can never be delivered; the packet goes to
 *     the agent's dead-letter area with `code` and `message`.
 *   Codes come from protocol/errors.ts: HANDLER_FAILED, HANDLER_TIMEOUT, HANDLER_REJECTED.
 * - Order: packets of one target arrive in seq order. The gateway hands a handler at most
 *   `inflightMax` packets of one target before the first of them resolved, and the handler must
 *   apply them in call order. Different targets and agents run side by side regardless.
 * - Identity: (agent, seq) names a packet end to end. The same packet may be handed over again
 *   (after a retryable failure, after a gateway crash between `ok` and the dispatch record), so
 *   a handler de-duplicates by (agent, seq) where it can and passes the identity on otherwise.
 * - `close()` finishes or fails what is in flight, releases sockets and files, and resolves;
 *   `handle` after `close` resolves a retryable failure.
 */
export interface Handler {
  readonly kind: string;
  /**
   * How many packets of ONE target the gateway may hand to this handler before the first of them
   * resolved (pipelining). The handler must apply them in call order. Default 1: strictly one at a
   * time, which keeps per-target order even across failures (a failed packet is retried before
   * the next is handed over); above 1, a failed packet may be retried after later ones succeeded.
   */
  readonly inflightMax?: number;
  handle(packet: DispatchPacket): Promise<HandlerResult>;
  /** Flushes and releases what the handler holds. */
  close(): Promise<void>;
}

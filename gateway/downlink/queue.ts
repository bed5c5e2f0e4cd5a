/**
 * The contract of the gateway's downlink queue: per agent, the messages applications queued, in
 * order, durable once `enqueue` resolved (write first, answer second). Sessions take messages off
 * it into DOWN frames and settle them with the agent's DOWN_ACK results. The implementation is
 * gateway/downlink/store.ts; test/gateway/downlink-queue-contract.ts holds its contract tests.
 */
import type { ErrorCode } from '../../protocol/errors.js';
import type { DownResult } from '../../protocol/frames.js';
import type { PacketData } from '../../protocol/packet.js';

/**
 * - `queued`: waiting for the agent (also again after a session that had it ended unanswered);
 * - `delivered`: sent to the agent in a live session, no answer yet (memory only: after a gateway
 *   restart it is `queued` again and sent again; the agent answers a repeat from its own record);
 * - `acked`: a consumer on the device took it;
 * - `rejected`: refused for good, `code` and `reason` say why (the consumer's, or the agent's);
 * - `expired`: its ttl ran out before a consumer took it (code DOWNLINK_EXPIRED);
 * - `dropped`: the queue was full with fullPolicy drop-oldest (code DOWNLINK_DROPPED).
 */
export type MessageState = 'queued' | 'delivered' | 'acked' | 'rejected' | 'expired' | 'dropped';
export const messageStates: readonly MessageState[] = ['queued', 'delivered', 'acked', 'rejected', 'expired', 'dropped'];
/** States a message never leaves. */
export type FinalState = 'acked' | 'rejected' | 'expired' | 'dropped';
const finalStates: ReadonlySet<string> = new Set<FinalState>(['acked', 'rejected', 'expired', 'dropped']);

export function isFinalState(s: string): s is FinalState {
  return finalStates.has(s);
}

export interface NewMessage {
  target: string;
  data: PacketData;
  /** the message expires this long after it was queued; absent: never */
  ttlMs?: number;
  /** who queued it (an application's name, or `mqtt`), for the record */
  from?: string;
}

/** A message as the API shows it. Times are ms since the epoch, the gateway's clock. */
export interface MessageView {
  id: string;
  agent: string;
  target: string;
  data: PacketData;
  state: MessageState;
  queuedAt: number;
  expiresAt?: number;
  from?: string;
  /** set for rejected, expired and dropped */
  code?: string;
  reason?: string;
  /** when it reached its final state */
  finishedAt?: number;
  /**
   * sent to its agent at least once (absent: never): from then on only the agent's verdict ends
   * it, never an expiry or a drop at the gateway, since its consumer may have taken it
   */
  sent?: true;
}

/** A message taken for a DOWN frame. */
export interface TakenMessage {
  id: string;
  target: string;
  data: PacketData;
  queuedAt: number;
  expiresAt?: number;
  /** what it counts against the agent's byte window (protocol/packet.ts packetCreditBytes) */
  bytes: number;
}

export type EnqueueResult = { ok: true; id: string } | { ok: false; code: ErrorCode; message: string };

export interface DownlinkQueueLimits {
  queueMessagesMax: number;
  queueBytesMax: number;
  fullPolicy: 'reject' | 'drop-oldest';
  historyMessagesMax: number;
}

export interface DownlinkStats {
  /** messages in each state now (final states: those still in the history) */
  queued: number;
  delivered: number;
  /** since start: how many ever reached each final state, and were queued */
  enqueued: number;
  acked: number;
  rejected: number;
  expired: number;
  dropped: number;
  /** DOWN_ACK results naming a message not delivered to that agent (stale, or foreign): ignored */
  ignoredResults: number;
  /** agents with a queue in memory */
  agents: number;
  /** fsyncs of the queue's file */
  syncs: number;
}

export interface DownlinkQueues {
  /**
   * Queues a message at the end of `agent`'s queue and resolves once it is durable. A full queue
   * refuses it (QUEUE_FULL) or, with drop-oldest, drops its oldest `queued` message (never a
   * `delivered` one: the agent may be handing it on). Rejects only if the write failed (nothing is
   * queued then).
   */
  enqueue(agent: string, m: NewMessage): Promise<EnqueueResult>;
  get(agent: string, id: string): MessageView | undefined;
  /** `agent`'s messages in queue order (final ones after the live ones, oldest first), optionally of one state, at most `limit` */
  list(agent: string, opts?: { state?: MessageState; limit?: number }): MessageView[];
  /**
   * The oldest `queued` messages of `agent`, in order, marked `delivered`: as many as fit
   * `room` (a first message larger than `room.bytes` is taken alone when `room.messages` and
   * `room.bytes` are whole, i.e. nothing is outstanding). Messages past their expiry met on the way
   * become `expired` and are not taken.
   */
  take(agent: string, room: { messages: number; bytes: number; whole: boolean }): TakenMessage[];
  /**
   * Resolves once every message `take` returned so far is recorded durably as sent (from then on
   * only its agent's verdict ends it: see MessageView.sent); a sender sends a DOWN frame only after
   * it. (Required, not optional: a wrapper that dropped it sent frames before the record, and a
   * power cut then let the gateway expire a message its consumer had.)
   */
  sentRecorded(): Promise<void>;
  /** A session ended: these `delivered` messages are `queued` again, ahead of the rest, in their order. */
  requeue(agent: string, ids: readonly string[]): void;
  /**
   * The agent's verdicts. A result for a message that is not `delivered` to `agent` is ignored
   * (counted): a session can settle only its own agent's messages. Resolves once durable.
   */
  settle(agent: string, results: readonly DownResult[]): Promise<{ applied: number; ignored: number }>;
  /** Calls `listener(agent)` after a message was queued for `agent`; returns the unsubscribe. */
  onQueued(listener: (agent: string) => void): () => void;
  stats(): DownlinkStats;
  close(): Promise<void>;
}

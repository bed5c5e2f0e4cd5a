import type { NewPacket, Packet } from '../../protocol/packet.js';

export const SyncPolicy = { always: 'always', batch: 'batch', none: 'none' } as const;
export type SyncPolicy = (typeof SyncPolicy)[keyof typeof SyncPolicy];

export interface StoreStats {
  /** appends resolved since the store was opened */
  appended: number;
  /** packets removed by acks since the store was opened */
  acked: number;
  /** highest seq ever assigned (survives restarts) */
  lastSeq: number;
  /** every seq <= ackedSeq is acknowledged */
  ackedSeq: number;
  /** packets stored and not yet acknowledged */
  backlogPackets: number;
  deadLetters: number;
  syncs: number;
}

/**
 * The agent's packet store. Contract, kept by every implementation:
 * - `append` assigns the next seq (strictly increasing for the agent's life, also across
 *   restarts) and resolves only once the record is durable under the sync policy; appends that
 *   arrive together may share one sync;
 * - `readAfter` returns un-acked packets in seq order without removing them;
 * - `ack(seq)` is cumulative; acked packets are never returned again, also after a restart
 *   (a crash may forget the last acks: those packets come back and the gateway de-duplicates);
 * - `deadLetter` keeps a packet the gateway rejected permanently, where it can be inspected;
 * - after `close` every call rejects with STORE_CLOSED.
 */
export interface PacketStore {
  append(packet: NewPacket): Promise<Packet>;
  readAfter(seq: number, countMax: number): Packet[];
  ack(seq: number): Promise<void>;
  deadLetter(packet: Packet, code: string, message: string): Promise<void>;
  /** Called after each durable append, so a link waiting for work can wake up. */
  onAppend(listener: () => void): void;
  /** Raises the seq counter so the next append gets a seq above `seq` (the gateway saw higher seqs than this store remembers, e.g. after a store wipe). */
  advanceSeq(seq: number): void;
  stats(): StoreStats;
  close(): Promise<void>;
}

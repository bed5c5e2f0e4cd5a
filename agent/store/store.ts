import type { NewPacket, Packet } from '../../protocol/packet.js';

export const SyncPolicy = { always: 'always', batch: 'batch', none: 'none' } as const;
export type SyncPolicy = (typeof SyncPolicy)[keyof typeof SyncPolicy];

/** What happens when an append would take the store past its capacity. */
export const FullPolicy = { dropOldest: 'drop-oldest', reject: 'reject', priority: 'priority' } as const;
export type FullPolicy = (typeof FullPolicy)[keyof typeof FullPolicy];

/** Why packets left the store without being acked. */
export interface DropCounts {
  /** deleted to make room (drop-oldest) */
  oldest: number;
  /** deleted to make room for higher priority (priority) */
  priority: number;
  /** expired before they were sent (ttl) */
  ttl: number;
  /** unreadable on flash (bad CRC, damaged segment) */
  corrupt: number;
}

export interface StoreStats {
  /** appends resolved since the store was opened */
  appended: number;
  /** packets acknowledged since the store was opened */
  acked: number;
  /** appends refused since the store was opened (STORE_FULL) */
  rejected: number;
  /** highest seq ever assigned (survives restarts) */
  lastSeq: number;
  /** every seq <= ackedSeq is acknowledged or dropped */
  ackedSeq: number;
  /** ackedSeq as last made durable: what the agent tells the gateway (a restart never goes below it, nor hands out a seq up to it again) */
  durableAckedSeq: number;
  /** packets stored and neither acked nor dropped */
  backlogPackets: number;
  /** bytes the store's files take on disk */
  storeBytes: number;
  dropped: DropCounts;
  deadLetters: number;
  syncs: number;
  /** packets given new seqs because the gateway knew higher seqs than the store (a wiped or replaced store) */
  renumbered: number;
  /** the store was created empty (new, or wiped) and no gateway has confirmed its numbering yet */
  fresh: boolean;
  segments: number;
  /** what the last open found: bytes of a torn tail cut, segments with damage (also found later while reading) */
  recovery: { tailBytesCut: number; damagedSegments: number };
}

export interface DeadLetter {
  packet: Packet;
  code: string;
  message: string;
}

/**
 * The agent's packet store. Contract, kept by every implementation:
 * - `append` assigns the next seq (strictly increasing for the agent's life, also across
 *   restarts) and resolves only once the record is durable under the sync policy; appends that
 *   arrive together may share one sync; a full store applies its policy (STORE_FULL when it refuses);
 * - `readAfter` returns un-acked, unexpired packets with seq > `seq`, in seq order, without
 *   removing them; it never returns a corrupt packet;
 * - `ack(seq)` is cumulative, `ackOne(seq, to?)` acknowledges one packet or the range seq..to (acks may come out of order);
 *   acked packets are never returned again, also after a restart (a crash may forget the last
 *   acks: those packets come back, and the gateway de-duplicates them);
 * - `deadLetter` keeps a packet the gateway rejected permanently (and acks it); `deadLetters`
 *   lists them and `requeueDeadLetters` appends them again as new packets (new seqs) and empties the area;
 * - after `close` every call rejects with STORE_CLOSED.
 */
export interface PacketStore {
  append(packet: NewPacket): Promise<Packet>;
  readAfter(seq: number, countMax: number): Promise<Packet[]>;
  ack(seq: number): Promise<void>;
  ackOne(seq: number, to?: number): Promise<void>;
  deadLetter(packet: Packet, code: string, message: string): Promise<void>;
  deadLetters(): Promise<DeadLetter[]>;
  requeueDeadLetters(): Promise<number>;
  /** Called after each durable append, so a link waiting for work can wake up. */
  onAppend(listener: () => void): void;
  /** Bytes on flash that hold backlog (an upper bound); absent: the link reports the store's size. */
  backlogBytes?(): number;
  /** Raises the seq counter so the next append gets a seq above `seq`; durable before it resolves. */
  advanceSeq(seq: number): Promise<void>;
  /**
   * The gateway has dispatched seqs up to `seq` for this agent. If this store never issued them
   * (`seq` > lastSeq), or cannot know (it is `fresh`: created empty, so a wiped store that has
   * since issued as many seqs looks the same), every stored packet gets a new seq above both, in
   * the same order, atomically, so no packet is acked by a number that named another store's
   * packet; a fresh store is then fresh no more. Appends made meanwhile wait and get seqs above.
   * Resolves with how many packets were renumbered.
   */
  renumberAbove(seq: number): Promise<number>;
  stats(): StoreStats;
  /** `stats().lastSeq` without building the rest: the link checks every ACK against it */
  highestIssuedSeq(): number;
  close(): Promise<void>;
}

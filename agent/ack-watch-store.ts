/**
 * The store as the link sees it, telling `AckWaiters` what the gateway decided: acks, dead letters
 * (permanent NACKs) and renumbering. Everything else passes through. A wrapper, so the link and
 * the store stay as they are.
 */
import type { NewPacket, Packet } from '../protocol/packet.js';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import type { AckWaiters } from './ack-waiters.js';
import type { PacketStore } from './store/store.js';

export function watchAcks(store: PacketStore, waiters: AckWaiters): PacketStore {
  return {
    append: (p: NewPacket) => store.append(p),
    readAfter: (seq, countMax) => store.readAfter(seq, countMax),
    ack: (seq) => {
      waiters.acked(1, seq);
      return store.ack(seq);
    },
    ackOne: (seq, to = seq) => {
      waiters.acked(seq, to);
      return store.ackOne(seq, to);
    },
    deadLetter: (packet: Packet, code, message) => {
      waiters.refusalStarted(packet.seq);
      return store.deadLetter(packet, code, message).finally(() => waiters.refused(packet.seq, code, message));
    },
    deadLetters: () => store.deadLetters(),
    requeueDeadLetters: () => store.requeueDeadLetters(),
    onAppend: (listener) => store.onAppend(listener),
    advanceSeq: (seq) => store.advanceSeq(seq),
    renumberAbove: async (seq) => {
      const n = await store.renumberAbove(seq);
      // A waited-for seq now names nothing (or another packet): those waits cannot be answered.
      if (n > 0) waiters.failAll(new FerryError(ErrorCode.SEND_WAIT_RENUMBERED, `the store renumbered ${n} packets (it was new to this gateway); the packet is still queued under a new seq`));
      return n;
    },
    stats: () => store.stats(),
    ...(store.backlogBytes ? { backlogBytes: () => store.backlogBytes!() } : {}),
    highestIssuedSeq: () => store.highestIssuedSeq(),
    close: () => store.close(),
  };
}

/**
 * The seams of the agent's downlink: a consumer takes one message and answers with a verdict; the
 * answered-message record remembers verdicts across restarts, so a message the gateway sends
 * again (its DOWN_ACK was lost) is answered from it and never handed on twice.
 */
import type { DownResult } from '../../protocol/frames.js';
import type { PacketData } from '../../protocol/packet.js';

export interface DownlinkMessage {
  id: string;
  target: string;
  data: PacketData;
  /** when the gateway queued it (ms since the epoch, the gateway's clock) */
  ts: number;
  /** on the agent's clock: past it, the message is refused (DOWNLINK_EXPIRED) instead of handed on; absent: never */
  deadlineMs?: number;
}

export type Verdict = { ok: true } | { ok: false; code: string; reason: string };

/**
 * A local consumer (serial device, local subscribers, a command). `deliver` resolves with the
 * consumer's verdict and never rejects; it answers within its own time-out (DOWNLINK_TIMEOUT).
 */
export interface DownlinkConsumer {
  deliver(m: DownlinkMessage): Promise<Verdict>;
  close?(): Promise<void>;
}

/**
 * The answered-message record (agent/downlink/answered-log.ts on disk). `record` resolves once
 * the verdict is durable; `get` knows every id recorded among the last `idsMax`.
 */
export interface AnsweredLog {
  get(id: string): DownResult | undefined;
  record(result: DownResult): Promise<void>;
  readonly size: number;
  close(): Promise<void>;
}

/** An in-memory AnsweredLog, for unit tests and the simulator's agent when no disk is modelled. */
export class MemoryAnsweredLog implements AnsweredLog {
  private readonly byId = new Map<string, DownResult>();
  constructor(private readonly idsMax: number) {}
  get(id: string): DownResult | undefined {
    return this.byId.get(id);
  }
  async record(result: DownResult): Promise<void> {
    this.byId.delete(result.id);
    this.byId.set(result.id, result);
    while (this.byId.size > this.idsMax) this.byId.delete(this.byId.keys().next().value!);
  }
  get size(): number {
    return this.byId.size;
  }
  async close(): Promise<void> {}
}

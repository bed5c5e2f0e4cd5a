import type { Clock } from '../../common/clock.js';

export interface LivenessHooks {
  /** Send a PING with this id. */
  ping(id: number): void;
  /** Nothing came from the peer for longer than peerTimeoutMs. */
  dead(silentMs: number): void;
}

/**
 * Keep-alive for one session: PINGs every `intervalMs`, measures the round trip from the PONGs,
 * and declares the peer dead after `peerTimeoutMs` without a frame. It checks for silence at least
 * twice per time-out, so a dead peer is found within peerTimeoutMs plus half of it (and 1 ms) at most.
 */
export class Liveness {
  private lastRxMs: number;
  private pingId = 0;
  private readonly sentAt = new Map<number, number>();
  private timer: unknown = null;
  private intervalMs = 0;
  /** the silence was found once and input was given a turn to be read: the next check may declare the peer dead */
  private rechecking = false;
  /** the last measured round trip, or null */
  rttMs: number | null = null;

  constructor(private readonly clock: Clock, private readonly peerTimeoutMs: number, private readonly hooks: LivenessHooks) {
    this.lastRxMs = clock.now();
  }

  /** A frame came from the peer. */
  heard(): void {
    this.lastRxMs = this.clock.now();
  }

  start(intervalMs: number): void {
    this.intervalMs = intervalMs;
    this.arm();
  }

  pong(id: number): void {
    const sentAt = this.sentAt.get(id);
    if (sentAt !== undefined) this.rttMs = this.clock.now() - sentAt;
  }

  stop(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(): void {
    this.timer = this.clock.setTimeout(() => this.tick(), Math.min(this.intervalMs, this.peerTimeoutMs / 2));
  }

  private tick(): void {
    const silentMs = this.clock.now() - this.lastRxMs;
    if (silentMs > this.peerTimeoutMs) {
      if (!this.rechecking) {
        // A timer can run late, after this process did not run for a while (a stall, a busy
        // host): what the peer sent meanwhile may wait unread in the socket. Read it first.
        this.rechecking = true;
        this.timer = this.clock.setTimeout(() => this.tick(), 1);
        return;
      }
      this.timer = null;
      this.hooks.dead(silentMs);
      return;
    }
    this.rechecking = false;
    this.sentAt.set(++this.pingId, this.clock.now());
    if (this.sentAt.size > 8) this.sentAt.delete(this.pingId - 8);
    this.hooks.ping(this.pingId);
    this.arm();
  }
}

/**
 * Admission of new connections, decided when a connection is accepted and before any work is done
 * for it: at most `connectionsPerAddressMax` held per remote address, and at most
 * `sessionsPerSecondMax` admitted per second (a token bucket holding one second's worth, so a
 * burst up to that size passes at once). A refused connection is told why with a BYE; a storm is
 * told to come back after a jittered `retryAfterMs`, which spreads the agents' next attempts.
 * No IO: the clock and the randomness come in.
 */
import { ErrorCode } from '../protocol/errors.js';

export interface AdmissionLimits {
  connectionsPerAddressMax: number;
  sessionsPerSecondMax: number;
}

export interface AdmissionDeps {
  /** ms, monotonic enough for rate keeping */
  now(): number;
  /** [0, 1) */
  rng(): number;
  /** range of the GATEWAY_BUSY retryAfterMs (default 1000–5000) */
  busyRetryMsMin?: number;
  busyRetryMsMax?: number;
}

export type Admit =
  | { ok: true; release(): void }
  | { ok: false; code: typeof ErrorCode.CONNECTIONS_PER_ADDRESS | typeof ErrorCode.GATEWAY_BUSY; reason: string; retryAfterMs?: number };

export class Admission {
  private readonly perAddress = new Map<string, number>();
  private tokens: number;
  private refilledAt: number;

  constructor(private readonly limits: AdmissionLimits, private readonly deps: AdmissionDeps) {
    this.tokens = limits.sessionsPerSecondMax;
    this.refilledAt = deps.now();
  }

  /** Admits one connection from `address`; `release()` once it has closed (idempotent). */
  admit(address: string): Admit {
    const held = this.perAddress.get(address) ?? 0;
    if (held >= this.limits.connectionsPerAddressMax) {
      return { ok: false, code: ErrorCode.CONNECTIONS_PER_ADDRESS, reason: `${address} already holds ${held} connections (limits.connectionsPerAddressMax)` };
    }
    this.refill();
    if (this.tokens < 1) {
      const min = this.deps.busyRetryMsMin ?? 1000;
      const max = this.deps.busyRetryMsMax ?? 5000;
      const retryAfterMs = Math.round(min + this.deps.rng() * (max - min));
      return { ok: false, code: ErrorCode.GATEWAY_BUSY, reason: `more than ${this.limits.sessionsPerSecondMax} new connections per second; retry after ${retryAfterMs} ms`, retryAfterMs };
    }
    this.tokens -= 1;
    this.perAddress.set(address, held + 1);
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        const n = (this.perAddress.get(address) ?? 1) - 1;
        if (n <= 0) this.perAddress.delete(address);
        else this.perAddress.set(address, n);
      },
    };
  }

  /** connections held by `address` */
  held(address: string): number {
    return this.perAddress.get(address) ?? 0;
  }

  private refill(): void {
    const now = this.deps.now();
    const elapsedMs = Math.max(0, now - this.refilledAt);
    this.refilledAt = now;
    const rate = this.limits.sessionsPerSecondMax;
    this.tokens = Math.min(rate, this.tokens + (elapsedMs * rate) / 1000);
  }
}

/**
 * Admission of new connections, decided when a connection is accepted and before any work is done
 * for it (on the TLS port: before the handshake):
 * - at most `connectionsPerAddressMax` held per remote address;
 * - at most `sessionsPerAddressPerSecondMax` admitted per second from one address, a share of
 * - at most `sessionsPerSecondMax` admitted per second in all.
 * Both rates are token buckets holding one second's worth, so a burst up to that size passes at
 * once. The per-address bucket is checked first and a connection it refuses takes no global
 * token: one address reconnecting in a tight loop gets its share and no more, and the rest of the
 * global rate stays for the others. A storm is told to come back after a jittered `retryAfterMs`,
 * which spreads the agents' next attempts.
 *
 * Memory: an address has an entry only while it holds a connection or its bucket is refilling;
 * entries that are neither are swept at most once a second, so the map holds at most the held
 * connections plus about one second's admissions (both bounded by the limits above).
 * No IO: the clock and the randomness come in.
 */
import { ErrorCode } from '../protocol/errors.js';

export interface AdmissionLimits {
  connectionsPerAddressMax: number;
  sessionsPerSecondMax: number;
  /** default `sessionsPerAddressPerSecondDefault(sessionsPerSecondMax)` */
  sessionsPerAddressPerSecondMax?: number;
}

/** One tenth of the global rate (at least 1): ten addresses churning at their limit still leave nothing starved for long. */
export function sessionsPerAddressPerSecondDefault(sessionsPerSecondMax: number): number {
  return Math.max(1, Math.ceil(sessionsPerSecondMax / 10));
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

/** A token bucket holding one second's worth of `rate`. */
class Bucket {
  tokens: number;
  constructor(private readonly rate: number, private refilledAt: number) {
    this.tokens = rate;
  }

  refill(now: number): void {
    const elapsedMs = Math.max(0, now - this.refilledAt);
    this.refilledAt = now;
    this.tokens = Math.min(this.rate, this.tokens + (elapsedMs * this.rate) / 1000);
  }

  get full(): boolean {
    return this.tokens >= this.rate;
  }
}

interface AddressEntry {
  held: number;
  bucket: Bucket;
}

const sweepIntervalMs = 1000;

export class Admission {
  private readonly perAddress = new Map<string, AddressEntry>();
  private readonly global: Bucket;
  private readonly perAddressRate: number;
  private sweptAt: number;

  constructor(private readonly limits: AdmissionLimits, private readonly deps: AdmissionDeps) {
    this.global = new Bucket(limits.sessionsPerSecondMax, deps.now());
    this.perAddressRate = limits.sessionsPerAddressPerSecondMax ?? sessionsPerAddressPerSecondDefault(limits.sessionsPerSecondMax);
    this.sweptAt = deps.now();
  }

  /** Admits one connection from `address`; `release()` once it has closed (idempotent). */
  admit(address: string): Admit {
    const now = this.deps.now();
    this.sweep(now);
    const entry = this.perAddress.get(address);
    const held = entry?.held ?? 0;
    if (held >= this.limits.connectionsPerAddressMax) {
      return { ok: false, code: ErrorCode.CONNECTIONS_PER_ADDRESS, reason: `${address} already holds ${held} connections (limits.connectionsPerAddressMax)` };
    }
    entry?.bucket.refill(now);
    if (entry && entry.bucket.tokens < 1) {
      return this.busy(`${address} opened more than ${this.perAddressRate} new connections per second (limits.sessionsPerAddressPerSecondMax)`);
    }
    this.global.refill(now);
    if (this.global.tokens < 1) return this.busy(`more than ${this.limits.sessionsPerSecondMax} new connections per second (limits.sessionsPerSecondMax)`);
    this.global.tokens -= 1;
    // An address is only remembered once admitted: refusals (a storm from many addresses) add nothing.
    const e = entry ?? { held: 0, bucket: new Bucket(this.perAddressRate, now) };
    if (!entry) this.perAddress.set(address, e);
    e.bucket.tokens -= 1;
    e.held += 1;
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        e.held -= 1; // the entry stays until swept: its bucket must outlive the connection
      },
    };
  }

  /** connections held by `address` */
  held(address: string): number {
    return this.perAddress.get(address)?.held ?? 0;
  }

  /** addresses remembered now (held connections or a refilling bucket) */
  addresses(): number {
    return this.perAddress.size;
  }

  private busy(why: string): Admit {
    const min = this.deps.busyRetryMsMin ?? 1000;
    const max = this.deps.busyRetryMsMax ?? 5000;
    const retryAfterMs = Math.round(min + this.deps.rng() * (max - min));
    return { ok: false, code: ErrorCode.GATEWAY_BUSY, reason: `${why}; retry after ${retryAfterMs} ms`, retryAfterMs };
  }

  /** Forgets addresses that hold nothing and whose bucket is full again: remembering them would change nothing. */
  private sweep(now: number): void {
    if (now - this.sweptAt < sweepIntervalMs) return;
    this.sweptAt = now;
    for (const [address, e] of this.perAddress) {
      if (e.held > 0) continue;
      e.bucket.refill(now);
      if (e.bucket.full) this.perAddress.delete(address);
    }
  }
}

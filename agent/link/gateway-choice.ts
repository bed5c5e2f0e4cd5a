/**
 * The transport choice: one Dialer over the agent's list of gateway URLs in order of preference
 * (`gateway: [tls://gw:7800, https://gw:7443]`). The Link above dials it as it dials one URL and
 * never learns which URL it got.
 *
 * - A dial tries the most preferred URL first. When it fails, or has not connected within
 *   `fallbackAfterMs`, the next is dialed too, in order; the first to connect is used and any
 *   other that connects later is closed at once.
 * - While the transport in use is not the most preferred, the more preferred URLs are probed
 *   every `probeIntervalMs` (in order; a real dial, bounded by `fallbackAfterMs`). A probe that
 *   connects is closed at once (over long-poll that sends `end`, so no session is left open at the
 *   gateway); then the transport in use is ended with a BYE and TRANSPORT_SWITCH, and the Link's
 *   next dial gets the preferred URL. Seqs and acks live in the Link and the store, so they carry
 *   across the switch as across any reconnect.
 * - A URL whose sessions connect and then close before their WELCOME (twice in a row: a port that
 *   takes connections and drops the stream, or leads to something else) is passed over, dialed
 *   last and not probed, for probeIntervalMs; then it is tried again.
 * Every switch is logged at info. Timers go through the injected clock.
 */
import type { Clock } from '../../common/clock.js';
import type { Log } from '../../common/log.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { FrameType } from '../../protocol/frames.js';
import type { Dialer, Transport } from '../../protocol/transport.js';

export interface GatewayCandidate {
  url: string;
  dial: Dialer;
}

export interface GatewayChoiceOptions {
  /** a URL that has not connected within this is given up for the next (default 10000) */
  fallbackAfterMs?: number;
  /** while on a fallback, the more preferred URLs are tried this often (default 300000) */
  probeIntervalMs?: number;
  clock: Clock;
  log: Log;
}

export const fallbackAfterMsDefault = 10_000;
/** sessions in a row that connect and close before their WELCOME before a URL is passed over */
export const unopenedBeforePassOver = 2;
export const probeIntervalMsDefault = 300_000;

export interface GatewayChoice extends Dialer {
  /** no more probes; a dial still running closes what it gets */
  stop(): void;
  /** the URL of the transport in use, if one is open */
  currentUrl(): string | undefined;
}

export function gatewayChoice(candidates: readonly GatewayCandidate[], opts: GatewayChoiceOptions): GatewayChoice {
  if (candidates.length === 0) throw new FerryError(ErrorCode.CONFIG_INVALID, 'gatewayChoice needs at least one gateway URL');
  const chooser = new Chooser(candidates, {
    fallbackAfterMs: opts.fallbackAfterMs ?? fallbackAfterMsDefault, probeIntervalMs: opts.probeIntervalMs ?? probeIntervalMsDefault, clock: opts.clock, log: opts.log,
  });
  return Object.assign(() => chooser.dial(), { stop: () => chooser.stop(), currentUrl: () => chooser.currentUrl() });
}

interface Resolved {
  fallbackAfterMs: number;
  probeIntervalMs: number;
  clock: Clock;
  log: Log;
}

/** The first of `errors` (in preference order) with a code gives the code; the soonest retry-after any asked for is kept. */
function allFailed(candidates: readonly GatewayCandidate[], errors: (Error | undefined)[]): Error {
  const parts = candidates.map((c, i) => `${c.url}: ${errors[i]?.message ?? 'did not connect'}`);
  const err = new Error(`no gateway URL connected (${parts.join('; ')})`, { cause: errors.find((e) => e !== undefined) });
  const code = errors.map((e) => (e as { code?: unknown } | undefined)?.code).find((c) => typeof c === 'string');
  const waits = errors.map((e) => (e as { retryAfterMs?: unknown } | undefined)?.retryAfterMs).filter((w): w is number => typeof w === 'number');
  return Object.assign(err, code !== undefined ? { code } : {}, waits.length > 0 ? { retryAfterMs: Math.min(...waits) } : {});
}

class Chooser {
  private current: { transport: Transport; index: number } | undefined;
  private probeTimer: unknown = null;
  private stopped = false;
  private lastIndex = -1;
  /** per candidate: sessions in a row that connected and closed before their WELCOME, and until when it is passed over */
  private readonly health: { unopenedInRow: number; passOverUntilMs: number }[];

  constructor(private readonly candidates: readonly GatewayCandidate[], private readonly o: Resolved) {
    this.health = candidates.map(() => ({ unopenedInRow: 0, passOverUntilMs: 0 }));
  }

  currentUrl(): string | undefined {
    return this.current === undefined ? undefined : this.candidates[this.current.index]!.url;
  }

  stop(): void {
    this.stopped = true;
    this.clearProbe();
  }

  async dial(): Promise<Transport> {
    const { transport, index } = await this.dialInOrder();
    if (this.stopped) {
      transport.close();
      throw new FerryError(ErrorCode.SHUTDOWN, 'the agent is stopping');
    }
    this.use(transport, index);
    return transport;
  }

  /** Dials in order of preference, the next when the last started fails or is slow; the first to connect wins. */
  private dialInOrder(): Promise<{ transport: Transport; index: number }> {
    const { clock, log, fallbackAfterMs } = this.o;
    const errors: (Error | undefined)[] = this.candidates.map(() => undefined);
    const order = this.dialOrder();
    return new Promise((resolve, reject) => {
      let settled = false;
      let started = 0;
      let pending = 0;
      let timer: unknown = null;
      const giveUpIfDone = (): void => {
        if (!settled && pending === 0 && started === this.candidates.length) {
          settled = true;
          reject(allFailed(this.candidates, errors));
        }
      };
      const startNext = (why?: string): void => {
        if (timer !== null) clock.clearTimeout(timer);
        timer = null;
        if (settled) return;
        if (started === this.candidates.length) return giveUpIfDone();
        const i = started++;
        const c = order[i]!;
        pending++;
        if (why !== undefined) log.info('gateway: trying the next URL', { url: this.candidates[c]!.url, after: this.candidates[order[i - 1]!]!.url, why });
        if (started < this.candidates.length) timer = clock.setTimeout(() => startNext(`no connection within ${fallbackAfterMs} ms`), fallbackAfterMs);
        this.candidates[c]!.dial().then(
          (transport) => {
            pending--;
            if (settled) {
              transport.close(); // a slower one connected after another won
              return;
            }
            settled = true;
            if (timer !== null) clock.clearTimeout(timer);
            resolve({ transport, index: c });
          },
          (err: unknown) => {
            pending--;
            errors[c] = err as Error;
            // Only the last one started moves the order on; an earlier one failing late changes nothing.
            if (i === started - 1) startNext(`failed: ${(err as Error).message}`);
            else giveUpIfDone();
          },
        );
      };
      startNext();
    });
  }

  /**
   * Preference order, but a URL passed over (it connected and then opened no session, twice in a
   * row) goes last until probeIntervalMs has passed: a port that takes connections and drops the
   * stream, or leads to something else, must not hold the agent off a URL that works.
   */
  private dialOrder(): number[] {
    const now = this.o.clock.now();
    const all = this.candidates.map((_, i) => i);
    const passed = (i: number): boolean => this.health[i]!.passOverUntilMs > now;
    return [...all.filter((i) => !passed(i)), ...all.filter(passed)];
  }

  /** Whether the session on `transport` opened (a WELCOME came): a URL whose sessions never open is passed over. */
  private watchSession(transport: Transport, index: number): void {
    let welcomed = false;
    transport.onFrame((f) => {
      if (f.t === FrameType.WELCOME) welcomed = true;
    });
    void transport.closed.then(() => {
      const h = this.health[index]!;
      if (welcomed) {
        h.unopenedInRow = 0;
        h.passOverUntilMs = 0;
        return;
      }
      if (++h.unopenedInRow < unopenedBeforePassOver) return;
      h.passOverUntilMs = this.o.clock.now() + this.o.probeIntervalMs;
      this.o.log.info('gateway: a URL connects but opens no session; passing it over for a while', { url: this.candidates[index]!.url, sessions: h.unopenedInRow, forMs: this.o.probeIntervalMs });
    });
  }

  private use(transport: Transport, index: number): void {
    this.watchSession(transport, index);
    const url = this.candidates[index]!.url;
    if (index !== this.lastIndex) {
      if (index === 0) this.o.log.info('gateway: using the preferred URL', { url });
      else this.o.log.info('gateway: using a fallback URL', { url, preferred: this.candidates[0]!.url, probeIntervalMs: this.o.probeIntervalMs });
    }
    this.lastIndex = index;
    this.current = { transport, index };
    this.clearProbe();
    if (index > 0) this.scheduleProbe(transport);
    void transport.closed.then(() => {
      if (this.current?.transport !== transport) return;
      this.current = undefined;
      this.clearProbe();
    });
  }

  private scheduleProbe(transport: Transport): void {
    this.probeTimer = this.o.clock.setTimeout(() => {
      this.probeTimer = null;
      void this.probe(transport);
    }, this.o.probeIntervalMs);
  }

  private clearProbe(): void {
    if (this.probeTimer !== null) this.o.clock.clearTimeout(this.probeTimer);
    this.probeTimer = null;
  }

  private stillCurrent(transport: Transport): boolean {
    return !this.stopped && this.current?.transport === transport;
  }

  /** Tries each URL more preferred than the one in use; the first that connects ends the one in use. */
  private async probe(transport: Transport): Promise<void> {
    const index = this.current?.index ?? 0;
    for (let j = 0; j < index; j++) {
      if (!this.stillCurrent(transport)) return;
      // A URL passed over is not moved back to on a connect alone: it is tried again once its time is up.
      if (this.health[j]!.passOverUntilMs > this.o.clock.now()) continue;
      const url = this.candidates[j]!.url;
      if (!(await this.probeOne(j))) continue;
      if (!this.stillCurrent(transport)) return;
      const from = this.candidates[index]!.url;
      this.o.log.info('gateway: a preferred URL connects again; switching back to it', { url, from });
      const err = new FerryError(ErrorCode.TRANSPORT_SWITCH, `switching from ${from} to the preferred gateway URL ${url}`);
      transport.send({ t: FrameType.BYE, code: err.code, reason: err.message });
      transport.close(err);
      return;
    }
    if (this.stillCurrent(transport)) this.scheduleProbe(transport);
  }

  /** One real dial, bounded by fallbackAfterMs; what connects is closed at once (whenever it connects). */
  private probeOne(j: number): Promise<boolean> {
    const { clock, fallbackAfterMs } = this.o;
    const url = this.candidates[j]!.url;
    return new Promise((resolve) => {
      let done = false;
      const timer = clock.setTimeout(() => {
        done = true;
        this.o.log.debug('gateway: probe did not connect in time', { url, fallbackAfterMs });
        resolve(false);
      }, fallbackAfterMs);
      this.candidates[j]!.dial().then(
        (probe) => {
          probe.close();
          if (done) return;
          done = true;
          clock.clearTimeout(timer);
          resolve(true);
        },
        (err: unknown) => {
          if (done) return;
          done = true;
          clock.clearTimeout(timer);
          this.o.log.debug('gateway: probe failed', { url, error: (err as Error).message, code: (err as { code?: unknown }).code });
          resolve(false);
        },
      );
    });
  }
}

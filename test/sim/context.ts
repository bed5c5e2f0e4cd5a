/** What every part of one simulated world shares. */
import type { Log, LogFields } from '../../common/log.js';
import type { CallOrder } from './checkers.js';
import type { DownOracle } from './downlink-oracle.js';
import type { SimDownstream } from './downstream.js';
import type { Oracle } from './oracle.js';
import type { Rng } from './rng.js';
import type { SimTime, TimerJitter } from './sim-clock.js';
import type { SimHttp } from './sim-http.js';
import type { SimNet } from './sim-net.js';
import type { Trace } from './trace.js';

export type DiskFaultsOn = 'any' | 'agents' | 'gateway';

export interface WorldContext {
  time: SimTime;
  rng: Rng;
  trace: Trace;
  net: SimNet;
  /** the long-poll carrier's HTTP path (issue 11) */
  http: SimHttp;
  oracle: Oracle;
  /** the downlink's oracle (issue 12); null when the run has no downlink */
  dl: DownOracle | null;
  /** the downlink's draws, apart from the world's: with the downlink off, a seed runs as before issue 12 */
  dlRng: Rng;
  order: CallOrder;
  downstream: SimDownstream;
  jitter: TimerJitter;
  /** which disks disk faults (full, I/O errors, short writes, bit flips) may hit */
  diskFaultsOn: DiskFaultsOn;
  /** Records a broken guarantee (or a crash of the simulation itself); the run stops at the next step. */
  fail(err: unknown): void;
  /** Runs `fn` at `delayMs` from now on the world's own timeline (restarts, fault ends). */
  later(delayMs: number, fn: () => void, owner?: string): void;
}

/** A Log for one simulated process: warnings and errors go into the trace (so into its hash), the rest is dropped. */
export function simLog(trace: Trace, who: string): Log {
  const emit = (level: string) => (msg: string, fields?: LogFields): void => {
    const code = (fields?.code ?? (fields?.err as { code?: unknown } | undefined)?.code) as string | undefined;
    trace.event('log', `${who} ${level} ${msg}${code ? ` ${code}` : ''}`);
  };
  const log: Log = { debug() {}, info() {}, warn: emit('warn'), error: emit('error'), child: () => log };
  return log;
}

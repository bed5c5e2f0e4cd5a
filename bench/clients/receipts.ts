/**
 * What a benchmark's receiving end counts, the same for every receiver (mqtt-subscriber.ts,
 * local-subscriber.ts): each message's index is read from its payload text (`p000000042-…`), so
 * missing, duplicated and foreign messages are counted; in latency mode the text also carries its
 * send time (`p000000042-m-SENDNS-…`, process.hrtime ns, CLOCK_MONOTONIC; `w` marks warm-up
 * messages, not counted) and the report holds receive time − send time.
 */
import { readFileSync } from 'node:fs';
import { distribution } from '../lib/stats.js';
import type { SubscriberReport } from './mqtt-subscriber.js';

/** After the set is complete, late repeats are still counted for this long. */
const graceMs = 300;

export class Receipts {
  readonly r = { received: 0, unique: 0, duplicates: 0, seqDuplicates: 0, foreign: 0 };
  private readonly seen: Uint8Array;
  private readonly identities = new Set<string>();
  private readonly latencies: Float64Array | null;
  private readonly arrivedNs: bigint[] | null;
  private latencyCount = 0;
  private firstRecvNs = 0n;
  private lastRecvNs = 0n;
  private lastProgressMs = Date.now();
  private cpuStart: NodeJS.CpuUsage | null = null;
  private stallTimer: NodeJS.Timeout | null = null;

  /** `done` is called once: a grace period after the set is complete, or after `stallMs` without progress once `watch` ran. */
  constructor(private readonly expected: number, latency: boolean, private readonly stallMs: number, private readonly done: () => void) {
    this.seen = new Uint8Array(expected);
    this.latencies = latency ? new Float64Array(expected) : null;
    this.arrivedNs = latency ? new Array<bigint>(expected) : null;
  }

  /** Starts watching for a stall (once the receiver is subscribed). */
  watch(): void {
    this.stallTimer = setInterval(() => {
      if (this.r.unique < this.expected && Date.now() - this.lastProgressMs > this.stallMs) this.finish();
    }, 500);
  }

  /** One message arrived at `nowNs`: `text` holds its index (and send time); `identity`, when given, is checked for repeats (ferry's seq, a message ID). */
  received(text: string, nowNs: bigint, identity?: string): void {
    const { r } = this;
    if (r.received++ === 0) {
      this.firstRecvNs = nowNs;
      this.cpuStart = process.cpuUsage();
    }
    this.lastProgressMs = Date.now();
    if (identity !== undefined) {
      if (this.identities.has(identity)) r.seqDuplicates++;
      else this.identities.add(identity);
    }
    const m = /^p(\d{9})-(?:([wm])-(\d+)-)?/.exec(text);
    const i = m ? Number(m[1]) : -1;
    if (i < 0 || i >= this.expected) {
      r.foreign++;
      return;
    }
    if (this.seen[i] === 1) {
      r.duplicates++;
      return;
    }
    this.seen[i] = 1;
    if (this.latencies && m![2] === 'm' && m![3] !== undefined) {
      this.arrivedNs![this.latencyCount] = nowNs;
      this.latencies[this.latencyCount++] = Number(nowNs - BigInt(m![3])) / 1e6;
    }
    if (++r.unique === this.expected) {
      this.lastRecvNs = nowNs;
      setTimeout(() => this.finish(), graceMs);
    }
  }

  get complete(): boolean {
    return this.r.unique >= this.expected;
  }

  private finished = false;
  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.stallTimer) clearInterval(this.stallTimer);
    this.done();
  }

  report(): SubscriberReport {
    let missing = 0;
    let firstMissing: number | null = null;
    for (let i = 0; i < this.expected; i++) {
      if (this.seen[i] === 0) {
        missing++;
        firstMissing ??= i;
      }
    }
    const cpu = process.cpuUsage(this.cpuStart ?? undefined);
    const cpus = readFileSync('/proc/self/status', 'utf8').match(/^Cpus_allowed_list:\s*(\S+)/m)?.[1] ?? '?';
    const measured = this.latencies ? this.latencies.subarray(0, this.latencyCount) : new Float64Array(0);
    const arrived = this.arrivedNs;
    const slowest = [...measured.keys()].sort((a, b) => measured[b]! - measured[a]!).slice(0, 10)
      .map((i) => ({ atS: Number(arrived![i]! - arrived![0]!) / 1e9, ms: measured[i]! }));
    return {
      ...this.r, missing, firstMissing, firstRecvNs: String(this.firstRecvNs), lastRecvNs: String(this.lastRecvNs),
      latencyMs: this.latencies ? distribution(Float64Array.from(measured)) : null, slowest,
      cpus, cpuSeconds: (cpu.user + cpu.system) / 1e6,
    };
  }
}

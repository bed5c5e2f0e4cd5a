/**
 * The receiving end of the tunnel and latency benchmarks, the same for ferry and its peer: an
 * mqtt.js 5 client (clean session) subscribed QoS 1 to FILTER, expecting packets 0..EXPECTED-1.
 * A packet's index is read from its payload (`p000000042-…`, also inside ferry's JSON string), so
 * every missing and every duplicated packet is counted; ferry's `ferry-seq` user property is
 * checked for duplicates too. In `latency` mode the payload also carries its send time
 * (`p000000042-m-SENDNS-…`, monotonic ns; `w` marks warm-up packets, not counted) and the report
 * holds the distribution of receive time − send time.
 * Prints `subscribed` once the SUBACK arrived, then (when all arrived and a grace period for late
 * duplicates passed, or when nothing new came for STALL_MS) one JSON report line.
 * usage: mqtt-subscriber URL FILTER EXPECTED count|latency [STALL_MS]
 */
import { readFileSync } from 'node:fs';
import { connectAsync } from 'mqtt';
import { distribution, type Distribution } from '../lib/stats.js';
import { fail, intArg } from './common.js';

export interface SubscriberReport {
  received: number;
  unique: number;
  duplicates: number;
  /** ferry only: messages whose `ferry-seq` was seen before */
  seqDuplicates: number;
  /** payloads with no index, or an index outside 0..EXPECTED-1 */
  foreign: number;
  missing: number;
  firstMissing: number | null;
  /** monotonic ns (as strings) of the first message and of the one that completed the set */
  firstRecvNs: string;
  lastRecvNs: string;
  /** receive − send, ms, of the measured (non-warm-up) packets; latency mode only */
  latencyMs: Distribution | null;
  /** the slowest measured packets: when they arrived (s after the first measured one) and their latency (ms) */
  slowest: { atS: number; ms: number }[];
  cpus: string;
  cpuSeconds: number;
}

const [url, filter, expectedArg, mode, stallArg] = process.argv.slice(2);
if (url === undefined || filter === undefined || (mode !== 'count' && mode !== 'latency')) fail('usage: mqtt-subscriber URL FILTER EXPECTED count|latency [STALL_MS]');
const expected = intArg(expectedArg, 'EXPECTED');
const stallMs = stallArg === undefined ? 30_000 : intArg(stallArg, 'STALL_MS');
const graceMs = 300;

const seen = new Uint8Array(expected);
const seqSeen = new Set<string>();
const latencies = mode === 'latency' ? new Float64Array(expected) : null;
const arrivedNs = mode === 'latency' ? new Array<bigint>(expected) : null;
let latencyCount = 0;
const r = { received: 0, unique: 0, duplicates: 0, seqDuplicates: 0, foreign: 0 };
let firstRecvNs = 0n;
let lastRecvNs = 0n;
let lastProgressMs = Date.now();
let cpuStart: NodeJS.CpuUsage | null = null;

const client = await connectAsync(url, { protocolVersion: 5, clean: true, reconnectPeriod: 0 });
client.on('message', (_topic, payload, packet) => {
  const nowNs = process.hrtime.bigint();
  if (r.received++ === 0) {
    firstRecvNs = nowNs;
    cpuStart = process.cpuUsage();
  }
  lastProgressMs = Date.now();
  const seq = packet.properties?.userProperties?.['ferry-seq'];
  if (typeof seq === 'string') {
    if (seqSeen.has(seq)) r.seqDuplicates++;
    else seqSeen.add(seq);
  }
  // The index sits after the first 'p' (ferry's payload is the same text as a JSON string: "p…").
  const at = payload.indexOf(0x70);
  const text = at >= 0 && at < 2 ? payload.toString('latin1', at, Math.min(payload.length, at + 40)) : '';
  const m = /^p(\d{9})-(?:([wm])-(\d+)-)?/.exec(text);
  const i = m ? Number(m[1]) : -1;
  if (i < 0 || i >= expected) {
    r.foreign++;
    return;
  }
  if (seen[i] === 1) {
    r.duplicates++;
    return;
  }
  seen[i] = 1;
  if (latencies && m![2] === 'm' && m![3] !== undefined) {
    arrivedNs![latencyCount] = nowNs;
    latencies[latencyCount++] = Number(nowNs - BigInt(m![3])) / 1e6;
  }
  if (++r.unique === expected) {
    lastRecvNs = nowNs;
    setTimeout(finish, graceMs);
  }
});
await client.subscribeAsync(filter, { qos: 1 });
process.stdout.write('subscribed\n');

const stallTimer = setInterval(() => {
  if (r.unique < expected && Date.now() - lastProgressMs > stallMs) finish();
}, 500);

function finish(): void {
  clearInterval(stallTimer);
  let missing = 0;
  let firstMissing: number | null = null;
  for (let i = 0; i < expected; i++) {
    if (seen[i] === 0) {
      missing++;
      firstMissing ??= i;
    }
  }
  const cpu = process.cpuUsage(cpuStart ?? undefined);
  const cpus = readFileSync('/proc/self/status', 'utf8').match(/^Cpus_allowed_list:\s*(\S+)/m)?.[1] ?? '?';
  const measured = latencies ? latencies.subarray(0, latencyCount) : new Float64Array(0);
  const slowest = [...measured.keys()].sort((a, b) => measured[b]! - measured[a]!).slice(0, 10)
    .map((i) => ({ atS: Number(arrivedNs![i]! - arrivedNs![0]!) / 1e9, ms: measured[i]! }));
  const report: SubscriberReport = {
    ...r, missing, firstMissing, firstRecvNs: String(firstRecvNs), lastRecvNs: String(lastRecvNs),
    latencyMs: latencies ? distribution(Float64Array.from(measured)) : null, slowest,
    cpus, cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
  void client.endAsync().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}

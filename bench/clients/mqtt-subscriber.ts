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
import { connectAsync } from 'mqtt';
import type { Distribution } from '../lib/stats.js';
import { fail, intArg } from './common.js';
import { Receipts } from './receipts.js';

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

const client = await connectAsync(url, { protocolVersion: 5, clean: true, reconnectPeriod: 0 });
const receipts = new Receipts(expected, mode === 'latency', stallMs, () => {
  process.stdout.write(`${JSON.stringify(receipts.report())}\n`);
  void client.endAsync().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
client.on('message', (_topic, payload, packet) => {
  const nowNs = process.hrtime.bigint();
  const seq = packet.properties?.userProperties?.['ferry-seq'];
  // The index sits after the first 'p' (ferry's payload is the same text as a JSON string: "p…").
  const at = payload.indexOf(0x70);
  const text = at >= 0 && at < 2 ? payload.toString('latin1', at, Math.min(payload.length, at + 40)) : '';
  receipts.received(text, nowNs, typeof seq === 'string' ? seq : undefined);
});
await client.subscribeAsync(filter, { qos: 1 });
process.stdout.write('subscribed\n');
receipts.watch();

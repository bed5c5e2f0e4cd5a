/**
 * The device's consumer in the downlink benchmark: a local-socket subscriber of the agent
 * (docs/downlink.md): `{"op":"subscribe","target":PATTERN}`, then each pushed
 * `{"message":{"id","target","data","ts"}}` is answered `{"op":"ack","id"}` at once (the acks of
 * one read go in one write). It checks and reports like bench/clients/mqtt-subscriber.ts (the
 * same report type): every message's index is read from its data (`p000000042-…`; data as a JSON
 * string, or as bytes `{"base64":…}` when it came through the gateway's MQTT source), so missing,
 * duplicated (also by message ID) and foreign messages are counted; in `latency` mode the data
 * also carries its send time (`p000000042-m-SENDNS-…`, process.hrtime ns, CLOCK_MONOTONIC; `w`
 * marks warm-up messages, not counted) and the report holds receive time − send time.
 * Prints `subscribed` once the agent answered the subscription, then (when all arrived and a grace
 * period for late repeats passed, or when nothing new came for STALL_MS) one JSON report line.
 * usage: local-subscriber SOCKET PATTERN EXPECTED count|latency [STALL_MS]
 */
import { readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { distribution } from '../lib/stats.js';
import { fail, intArg } from './common.js';
import type { SubscriberReport } from './mqtt-subscriber.js';

export interface LocalSubscriberReport extends SubscriberReport {
  /** responses other than {"ok":true} (a refused ack), with the first few */
  refused: number;
  refusedExamples: string[];
}

const [socketPath, pattern, expectedArg, mode, stallArg] = process.argv.slice(2);
if (socketPath === undefined || pattern === undefined || (mode !== 'count' && mode !== 'latency')) fail('usage: local-subscriber SOCKET PATTERN EXPECTED count|latency [STALL_MS]');
const expected = intArg(expectedArg, 'EXPECTED');
const stallMs = stallArg === undefined ? 30_000 : intArg(stallArg, 'STALL_MS');
const graceMs = 300;

const seen = new Uint8Array(expected);
const idsSeen = new Set<string>();
const latencies = mode === 'latency' ? new Float64Array(expected) : null;
const arrivedNs = mode === 'latency' ? new Array<bigint>(expected) : null;
let latencyCount = 0;
const r = { received: 0, unique: 0, duplicates: 0, seqDuplicates: 0, foreign: 0 };
/** responses other than {"ok":true}: a refused ack or subscription */
const refusals: string[] = [];
let refused = 0;
let firstRecvNs = 0n;
let lastRecvNs = 0n;
let lastProgressMs = Date.now();
let cpuStart: NodeJS.CpuUsage | null = null;
let subscribed = false;

interface Pushed { id: string; target: string; data: unknown; ts: number }

/** The text the index and send time are read from: a JSON string as it is, bytes decoded. */
function dataText(data: unknown): string {
  if (typeof data === 'string') return data;
  if (typeof data === 'object' && data !== null && typeof (data as { base64?: unknown }).base64 === 'string') {
    return Buffer.from((data as { base64: string }).base64, 'base64').toString('latin1');
  }
  return '';
}

function onMessage(m: Pushed, nowNs: bigint): void {
  if (r.received++ === 0) {
    firstRecvNs = nowNs;
    cpuStart = process.cpuUsage();
  }
  lastProgressMs = Date.now();
  if (idsSeen.has(m.id)) r.seqDuplicates++;
  else idsSeen.add(m.id);
  const match = /^p(\d{9})-(?:([wm])-(\d+)-)?/.exec(dataText(m.data).slice(0, 40));
  const i = match ? Number(match[1]) : -1;
  if (i < 0 || i >= expected) {
    r.foreign++;
    return;
  }
  if (seen[i] === 1) {
    r.duplicates++;
    return;
  }
  seen[i] = 1;
  if (latencies && match![2] === 'm' && match![3] !== undefined) {
    arrivedNs![latencyCount] = nowNs;
    latencies[latencyCount++] = Number(nowNs - BigInt(match![3])) / 1e6;
  }
  if (++r.unique === expected) {
    lastRecvNs = nowNs;
    setTimeout(finish, graceMs);
  }
}

const socket = createConnection(socketPath);
await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject)).catch((err: Error) => fail(`agent socket ${socketPath}: ${err.message}`));
socket.on('error', (err) => fail(`agent socket ${socketPath}: ${err.message}`));
socket.on('close', () => {
  if (r.unique < expected) fail(`the agent closed the socket after ${r.unique} of ${expected} messages`);
});
socket.setEncoding('utf8');
let buffered = '';
socket.on('data', (chunk: string) => {
  const nowNs = process.hrtime.bigint();
  buffered += chunk;
  let acks = '';
  for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    const o = JSON.parse(line) as { ok?: boolean; message?: Pushed | string };
    // A pushed line has no "ok"; a refusal has "ok": false and a "message" too (a string).
    if (o.ok === undefined && typeof o.message === 'object' && o.message !== null) {
      onMessage(o.message, nowNs);
      acks += `{"op":"ack","id":${JSON.stringify(o.message.id)}}\n`;
    } else if (o.ok === true) {
      if (!subscribed) {
        subscribed = true;
        process.stdout.write('subscribed\n');
      }
    } else {
      if (!subscribed) fail(`subscribe ${pattern} refused: ${line}`);
      if (refused++ < 5) refusals.push(line.slice(0, 300));
    }
  }
  if (acks !== '') socket.write(acks);
});
socket.write(`{"op":"subscribe","target":${JSON.stringify(pattern)}}\n`);

const stallTimer = setInterval(() => {
  if (subscribed && r.unique < expected && Date.now() - lastProgressMs > stallMs) finish();
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
  const report: LocalSubscriberReport = {
    ...r, refused, refusedExamples: refusals, missing, firstMissing, firstRecvNs: String(firstRecvNs), lastRecvNs: String(lastRecvNs),
    latencyMs: latencies ? distribution(Float64Array.from(measured)) : null, slowest,
    cpus, cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
  socket.removeAllListeners('close');
  process.stdout.write(`${JSON.stringify(report)}\n`);
  socket.end(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}

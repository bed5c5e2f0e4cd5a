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
import { createConnection } from 'node:net';
import { fail, intArg } from './common.js';
import { Receipts } from './receipts.js';
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

/** responses other than {"ok":true}: a refused ack or subscription */
const refusals: string[] = [];
let refused = 0;
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

const socket = createConnection(socketPath);
await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject)).catch((err: Error) => fail(`agent socket ${socketPath}: ${err.message}`));
socket.on('error', (err) => fail(`agent socket ${socketPath}: ${err.message}`));
const receipts = new Receipts(expected, mode === 'latency', stallMs, () => {
  const report: LocalSubscriberReport = { ...receipts.report(), refused, refusedExamples: refusals };
  socket.removeAllListeners('close');
  process.stdout.write(`${JSON.stringify(report)}\n`);
  socket.end(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
socket.on('close', () => {
  if (!receipts.complete) fail(`the agent closed the socket after ${receipts.r.unique} of ${expected} messages`);
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
      receipts.received(dataText(o.message.data).slice(0, 40), nowNs, o.message.id);
      acks += `{"op":"ack","id":${JSON.stringify(o.message.id)}}\n`;
    } else if (o.ok === true) {
      if (!subscribed) {
        subscribed = true;
        process.stdout.write('subscribed\n');
        receipts.watch();
      }
    } else {
      if (!subscribed) fail(`subscribe ${pattern} refused: ${line}`);
      if (refused++ < 5) refusals.push(line.slice(0, 300));
    }
  }
  if (acks !== '') socket.write(acks);
});
socket.write(`{"op":"subscribe","target":${JSON.stringify(pattern)}}\n`);

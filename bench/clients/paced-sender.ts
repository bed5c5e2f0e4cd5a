/**
 * Open-loop sender for the latency benchmarks: RATE packets/s for WARMUP_S + MEASURE_S seconds,
 * whatever the answers do, each stamped with its send time just before it is written:
 * `p000000042-m-SENDNS-xxxx…` (100 bytes; `w` for warm-up packets; SENDNS = process.hrtime in ns,
 * CLOCK_MONOTONIC, comparable with the subscriber's clock on the same machine).
 *   ferry: one connection to the agent's local socket, `{"op":"send",...}` lines; the answer means
 *          the packet is durable at the agent.
 *   mqtt:  mqtt.js 5 `publish` QoS 1; the answer is the PUBACK.
 *   api:   the gateway's application API (downlink): `POST URL` (…/v1/agents/AGENT/messages) with
 *          `{"target":TARGET,"data":PAYLOAD}` and `Authorization: Bearer $FERRY_BENCH_TOKEN`, over
 *          a keep-alive http.Agent of CONNECTIONS sockets (requests beyond them wait in the
 *          agent's queue, and that wait counts); the answer is the 201 (durable at the gateway).
 *          Any other status fails the run.
 * Sends are due on a 1 ms timer: each tick sends every packet due by now (usually one), so the
 * schedule does not drift. Prints one JSON report line once every packet was answered.
 * usage: paced-sender ferry|mqtt|api SOCKET|URL RATE WARMUP_S MEASURE_S TARGET|TOPIC [CONNECTIONS]
 */
import { readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { connectAsync } from 'mqtt';
import { distribution, type Distribution } from '../lib/stats.js';
import { apiPoster, fail, intArg } from './common.js';

export interface PacedReport {
  sent: number;
  acked: number;
  /** monotonic ns (as strings): first and last send, last answer */
  firstSendNs: string;
  lastSendNs: string;
  lastAckNs: string;
  /** most packets sent in one timer tick (1 = the schedule held) */
  burstMax: number;
  /** send → answer (ferry: durable at the agent; mqtt: PUBACK), ms, measured packets only */
  answerMs: Distribution;
  cpus: string;
  cpuSeconds: number;
}

const [mode, dest, rateArg, warmArg, measureArg, target, connectionsArg] = process.argv.slice(2);
if ((mode !== 'ferry' && mode !== 'mqtt' && mode !== 'api') || dest === undefined || target === undefined) fail('usage: paced-sender ferry|mqtt|api SOCKET|URL RATE WARMUP_S MEASURE_S TARGET|TOPIC [CONNECTIONS]');
const rate = intArg(rateArg, 'RATE');
const warmup = rate * Number(warmArg);
const total = warmup + rate * intArg(measureArg, 'MEASURE_S');
if (!Number.isInteger(warmup) || warmup < 0) fail(`WARMUP_S: expected a number of seconds, got '${warmArg}'`);

const sentNs = new Array<bigint>(total);
const answerMs = new Float64Array(total - warmup);
let answered = 0;
let sent = 0;
let lastAckNs = 0n;
let done: () => void = () => undefined;
const allAnswered = new Promise<void>((resolve) => (done = resolve));

function onAnswer(i: number): void {
  const now = process.hrtime.bigint();
  if (i >= warmup) answerMs[i - warmup] = Number(now - sentNs[i]!) / 1e6;
  lastAckNs = now;
  if (++answered === total) done();
}

function payload(i: number, ns: bigint): string {
  return `p${String(i).padStart(9, '0')}-${i < warmup ? 'w' : 'm'}-${ns}-`.padEnd(100, 'x');
}

/** Sends packet i now; `flush` writes what the sends of one tick queued. */
interface Sink { send(i: number): void; flush(): void }

async function ferrySink(): Promise<Sink> {
  const socket = createConnection(dest!);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.setEncoding('utf8');
  let buffered = '';
  let next = 0;
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const res = JSON.parse(buffered.slice(0, nl)) as { ok: boolean };
      buffered = buffered.slice(nl + 1);
      if (!res.ok) fail(`agent refused packet ${next}: ${JSON.stringify(res)}`);
      onAnswer(next++); // answers come in request order
    }
  });
  socket.on('error', (err) => fail(`agent socket ${dest}: ${err.message}`));
  const targetJson = JSON.stringify(target);
  let out = '';
  return {
    send(i) {
      const ns = process.hrtime.bigint();
      sentNs[i] = ns;
      out += `{"op":"send","target":${targetJson},"data":"${payload(i, ns)}"}\n`;
    },
    flush() {
      if (out.length > 0) socket.write(out);
      out = '';
    },
  };
}

async function mqttSink(): Promise<Sink> {
  const client = await connectAsync(dest!, { protocolVersion: 5, clean: true, reconnectPeriod: 0 });
  return {
    send(i) {
      const ns = process.hrtime.bigint();
      sentNs[i] = ns;
      client.publish(target!, Buffer.from(payload(i, ns)), { qos: 1 }, (err) => (err ? fail(`publish ${i}: ${err.message}`) : onAnswer(i)));
    },
    flush() {},
  };
}

/** POSTs to the gateway's application API; one request per packet, answered 201 once the message is durable there. */
async function apiSink(): Promise<Sink> {
  const token = process.env.FERRY_BENCH_TOKEN;
  if (!token) fail('api mode needs FERRY_BENCH_TOKEN (an application token)');
  const api = apiPoster(dest!, token, intArg(connectionsArg ?? '16', 'CONNECTIONS'));
  const post = (i: number, body: string): void => {
    api.post(`packet ${i}`, body).then(() => onAnswer(i), (err: Error) => fail(err.message));
  };
  const targetJson = JSON.stringify(target);
  return {
    send(i) {
      const ns = process.hrtime.bigint();
      sentNs[i] = ns;
      post(i, `{"target":${targetJson},"data":"${payload(i, ns)}"}`);
    },
    flush() {},
  };
}

const sink = mode === 'ferry' ? await ferrySink() : mode === 'mqtt' ? await mqttSink() : await apiSink();
const cpuStart = process.cpuUsage();
const t0 = process.hrtime.bigint();
let burstMax = 0;
await new Promise<void>((resolve) => {
  const tick = (): void => {
    const due = Math.min(total, Math.floor((Number(process.hrtime.bigint() - t0) * rate) / 1e9) + 1);
    burstMax = Math.max(burstMax, due - sent);
    while (sent < due) sink.send(sent++);
    sink.flush();
    if (sent < total) setTimeout(tick, 1);
    else resolve();
  };
  tick();
});
await allAnswered;
const cpu = process.cpuUsage(cpuStart);
const report: PacedReport = {
  sent, acked: answered, firstSendNs: String(sentNs[0]), lastSendNs: String(sentNs[total - 1]), lastAckNs: String(lastAckNs),
  burstMax, answerMs: distribution(answerMs), cpus: readFileSync('/proc/self/status', 'utf8').match(/^Cpus_allowed_list:\s*(\S+)/m)?.[1] ?? '?',
  cpuSeconds: (cpu.user + cpu.system) / 1e6,
};
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(0);

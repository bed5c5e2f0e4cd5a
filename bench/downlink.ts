/**
 * Benchmark `downlink` (issue 12): messages from an application to a consumer on the device,
 * ferry and its peer side by side in one run, every process under `taskset -c BENCH_CPUS`.
 *   ferry: application POST /v1/agents/{id}/messages (listen.api; 201 once durable) → gateway →
 *          DOWN over the TCP tunnel or in a long-poll response → agent (verdict recorded durably,
 *          then DOWN_ACK) → local-socket subscriber (acks each at once). Optionally the gateway's
 *          MQTT source instead of the API (BENCH_DOWNLINK_SOURCES=api,mqtt): mqtt.js publishes
 *          QoS 1 to mosquitto under ferry/down/{agent}/…, the gateway queues it.
 *   peer:  mqtt.js publishes QoS 1 to mosquitto → an MQTT subscriber (the "device", QoS 1).
 * Parts (BENCH_DOWNLINK_PARTS):
 *   latency:    open loop at each of BENCH_DOWNLINK_RATES messages/s; each message's data carries
 *               its send time (process.hrtime, CLOCK_MONOTONIC); the consumer records receive −
 *               send. p50/p90/p99/max, POST → 201, CPU % per process.
 *   throughput: BENCH_DOWNLINK_MESSAGES posted with BENCH_DOWNLINK_CONCURRENCY requests in progress,
 *               first POST → last receipt at the consumer, once per agent window
 *               (BENCH_DOWNLINK_WINDOWS, downlink.messagesMax); the peer's publisher keeps the same
 *               number of publishes in flight.
 */
import { tmpdir } from 'node:os';
import type { Cleanup } from './lib/cleanup.js';
import { runClient } from './lib/client.js';
import { cpuMeter } from './lib/cpu.js';
import { describeProbe, probeSync } from './lib/disk-probe.js';
import { downTarget, mqttSourceTopic, startDownlinkGateway, startDownlinkRig, startLocalSubscriber } from './lib/downlink-rig.js';
import { downlinkReport, label, type LatencyRun, type Side, type ThroughputRun } from './downlink-report.js';
import type { DownlinkOptions } from './lib/e2e-options.js';
import { longpollTotals, withAgentStats } from './lib/ferry-rig.js';
import { startBroker, startSubscriber } from './lib/mqtt-side.js';
import { countSyncs } from './lib/syncs.js';
import { secondsBetween, fmt } from './lib/timing.js';
import { load } from './latency.js';

type Say = (line?: string) => void;
type InRound = (fn: (cleanup: Cleanup) => Promise<void>) => Promise<void>;

/** Peer topics: the device subscribes to bench/down/#. */
const peerTopic = 'bench/down/messages';
const peerFilter = 'bench/down/#';

function sides(o: DownlinkOptions): Side[] {
  const ferry: Side[] = o.sources.flatMap((source) => o.carriers.map((carrier) => ({ kind: 'ferry' as const, carrier, source })));
  return [...ferry, { kind: 'peer' }];
}

/** The throughput runs: each ferry side once per agent window, the gateway's intake alone (when the API is a source), the peer. */
function throughputSides(o: DownlinkOptions): { side: Side; window: number | null }[] {
  return [
    ...sides(o).flatMap((side): { side: Side; window: number | null }[] => (side.kind === 'ferry' ? o.windows.map((window) => ({ side, window })) : [{ side, window: null }])),
    ...(o.sources.includes('api') ? [{ side: { kind: 'intake' } as Side, window: null }] : []),
  ];
}

/** The gateway alone: N POSTs, K in progress, into the queue of an agent that is not connected; first POST → last 201. */
async function intakeRun(o: DownlinkOptions, cleanup: Cleanup): Promise<ThroughputRun> {
  const n = o.messages;
  const g = await startDownlinkGateway({ carrier: 'tcp', messages: n }, o, cleanup);
  const cpu = await cpuMeter([{ name: 'ferry gateway', pid: g.gw.proc.pid }]);
  const poster = runClient('api-poster', [g.postUrl, String(n), String(o.concurrency), downTarget], { cpus: o.cpus, cleanup, env: { FERRY_BENCH_TOKEN: g.token } });
  const p = await poster.result;
  const servers = await cpu.stop();
  const seconds = secondsBetween(p.firstSendNs, p.lastAckNs);
  return { side: { kind: 'intake' }, window: null, messages: n, seconds, sendSeconds: seconds, cpu: { ...servers, sender: p.cpuSeconds }, syncs: {}, longpoll: null };
}

/** One latency run at `rate`: its own processes (and mosquitto where one is needed), all stopped before the next. */
async function latencyRun(o: DownlinkOptions, side: Side, rate: number, cleanup: Cleanup): Promise<LatencyRun> {
  const po = { rate, warmupSeconds: o.warmupSeconds, seconds: o.seconds, cpus: o.cpus };
  const total = rate * (o.warmupSeconds + o.seconds);
  if (side.kind !== 'ferry') {
    const broker = await startBroker(o.cpus, cleanup);
    const sub = await startSubscriber(broker.url, peerFilter, total, { cpus: o.cpus, cleanup, latency: true });
    const r = await load(po, 'mqtt', broker.url, peerTopic, sub, [{ name: 'mosquitto', pid: broker.pid }], cleanup);
    return { side, rate, ...r, longpoll: null };
  }
  const broker = side.source === 'mqtt' ? await startBroker(o.cpus, cleanup) : null;
  const rig = await startDownlinkRig({ carrier: side.carrier, messages: total, ...(broker ? { mqttUrl: broker.url } : {}) }, o, cleanup);
  const sub = await startLocalSubscriber(rig.agent.socket, total, { cpus: o.cpus, cleanup, latency: true });
  const servers = [...rig.servers, ...(broker ? [{ name: 'mosquitto', pid: broker.pid }] : [])];
  const r = await (broker
    ? load(po, 'mqtt', broker.url, mqttSourceTopic, sub, servers, cleanup)
    : load(po, 'api', rig.postUrl, downTarget, sub, servers, cleanup, { args: [String(o.connections)], env: { FERRY_BENCH_TOKEN: rig.token } })
  ).catch((err: unknown) => withAgentStats(err, rig.agent.socket));
  await rig.agent.proc.stop();
  return { side, rate, ...r, longpoll: side.carrier === 'longpoll' ? await longpollTotals(rig.gw) : null };
}

/** One throughput run: N messages, K in flight, first send → the consumer holds all N. */
async function throughputRun(o: DownlinkOptions, side: Side, window: number | null, cleanup: Cleanup): Promise<ThroughputRun> {
  const n = o.messages;
  if (side.kind === 'intake') return intakeRun(o, cleanup);
  if (side.kind === 'peer') {
    const broker = await startBroker(o.cpus, cleanup);
    const sub = await startSubscriber(broker.url, peerFilter, n, { cpus: o.cpus, cleanup });
    const cpu = await cpuMeter([{ name: 'mosquitto', pid: broker.pid }]);
    const pub = runClient('mqtt-publisher', [broker.url, String(n), String(o.concurrency), peerTopic], { cpus: o.cpus, cleanup });
    const [p, s] = await Promise.all([pub.result, sub.result]);
    const servers = await cpu.stop();
    return { side, window, messages: n, seconds: secondsBetween(p.firstSendNs, s.lastRecvNs), sendSeconds: secondsBetween(p.firstSendNs, p.lastAckNs), cpu: { ...servers, sender: p.cpuSeconds, subscriber: s.cpuSeconds }, syncs: {}, longpoll: null };
  }
  const broker = side.source === 'mqtt' ? await startBroker(o.cpus, cleanup) : null;
  const rig = await startDownlinkRig({ carrier: side.carrier, window: window!, messages: n, ...(broker ? { mqttUrl: broker.url } : {}) }, o, cleanup);
  const sub = await startLocalSubscriber(rig.agent.socket, n, { cpus: o.cpus, cleanup });
  const counters = o.countSyncs ? await Promise.all(rig.servers.map(async (p) => ({ name: p.name, counter: await countSyncs(p.name, p.pid, cleanup) }))) : [];
  const cpu = await cpuMeter([...rig.servers, ...(broker ? [{ name: 'mosquitto', pid: broker.pid }] : [])]);
  const sender = broker
    ? runClient('mqtt-publisher', [broker.url, String(n), String(o.concurrency), mqttSourceTopic], { cpus: o.cpus, cleanup })
    : runClient('api-poster', [rig.postUrl, String(n), String(o.concurrency), downTarget], { cpus: o.cpus, cleanup, env: { FERRY_BENCH_TOKEN: rig.token } });
  const [p, s] = await Promise.all([sender.result, sub.result]).catch((err: unknown) => withAgentStats(err, rig.agent.socket));
  const servers = await cpu.stop();
  const syncs = Object.fromEntries(await Promise.all(counters.map(async (c) => [c.name, await c.counter.stop()] as const)));
  await rig.agent.proc.stop();
  return {
    side, window, messages: n, seconds: secondsBetween(p.firstSendNs, s.lastRecvNs), sendSeconds: secondsBetween(p.firstSendNs, p.lastAckNs),
    cpu: { ...servers, sender: p.cpuSeconds, subscriber: s.cpuSeconds }, syncs, longpoll: side.carrier === 'longpoll' ? await longpollTotals(rig.gw) : null,
  };
}

export async function benchDownlink(o: DownlinkOptions, inRound: InRound, say: Say): Promise<void> {
  say(`downlink: application → device consumer, ferry (${o.sources.join(', ')} over ${o.carriers.join(', ')}) vs mqtt.js QoS 1 → mosquitto → subscriber; parts: ${o.parts.join(', ')}; ${o.downlinkRounds} round(s); every process under taskset -c ${o.cpus}; gateway limits: ${process.env.BENCH_GATEWAY_LIMITS || 'defaults'}`);
  const failures: string[] = [];
  /** Runs `fn` in its own round (processes and temp dirs gone after); a failure is noted, the benchmark goes on. */
  const attempt = async <T>(what: string, fn: (cleanup: Cleanup) => Promise<T>): Promise<T | null> => {
    let result: T | null = null;
    await inRound(async (cleanup) => {
      try {
        result = await fn(cleanup);
      } catch (err) {
        failures.push(`${what}: ${(err as Error).message}`);
        say(`${what}: FAILED: ${(err as Error).message.split('\n')[0]}`);
      }
    });
    return result;
  };
  const latency: LatencyRun[] = [];
  const throughput: ThroughputRun[] = [];
  for (let round = 0; round < o.downlinkRounds; round++) {
    const order = round % 2 === 0 ? sides(o) : sides(o).reverse();
    // The disk's sync latency sets much of ferry's figures here, and it varies with the machine's other work.
    say(`round ${round + 1}: ${describeProbe(probeSync(tmpdir()))}`);
    if (o.parts.includes('latency')) {
      for (const rate of o.rates) {
        for (const side of order) {
          const r = await attempt(`latency ${fmt(rate)}/s, ${label(side)}, round ${round + 1}`, (cleanup) => latencyRun(o, side, rate, cleanup));
          if (r === null) continue;
          latency.push(r);
          say(`round ${round + 1}: ${fmt(rate)}/s, ${label(side)}: p50 ${fmt(r.latency.p50, 2)} ms, p99 ${fmt(r.latency.p99, 2)} ms, max ${fmt(r.latency.max, 2)} ms (${fmt(r.latency.count)} messages sent at ${fmt(r.achievedRate)}/s, received at ${fmt(r.receivedRate)}/s)`);
        }
      }
    }
    if (o.parts.includes('throughput')) {
      const runs = round % 2 === 0 ? throughputSides(o) : throughputSides(o).reverse();
      for (const { side, window } of runs) {
        const w = window === null ? '' : `, window ${window}`;
        const r = await attempt(`throughput, ${label(side)}${w}, round ${round + 1}`, (cleanup) => throughputRun(o, side, window, cleanup));
        if (r === null) continue;
        throughput.push(r);
        say(`round ${round + 1}: ${label(side)}${w}: ${fmt(r.messages / r.seconds)} messages/s, sends answered at ${fmt(r.messages / r.sendSeconds)}/s`);
      }
    }
  }
  downlinkReport(o, latency, throughput, say);
  if (failures.length > 0) {
    process.exitCode = 1;
    say();
    say(`downlink: ${failures.length} run(s) FAILED:`);
    for (const f of failures) say(`- ${f}`);
  }
}

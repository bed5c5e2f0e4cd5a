/**
 * Benchmark `tunnel`: packets/s from the first send until a separate MQTT subscriber holds all N.
 *   ferry: producer → agent local socket (durable: fdatasync) → TCP tunnel → gateway → mqtt
 *          handler (QoS 1, acks after PUBACK; dispatch log durable) → mosquitto → subscriber.
 *   peer:  mqtt.js publishing QoS 1 straight to the same mosquitto with a window of 1 and of 20.
 * One mosquitto per round serves all three runs; each run has its own subscriber (QoS 1, clean
 * session, subscribed before the first send) that checks every packet arrived exactly once.
 */
import { tmpdir } from 'node:os';
import { localRequest } from '../agent/local-api.js';
import type { Cleanup } from './lib/cleanup.js';
import { runClient } from './lib/client.js';
import { tempDir } from './lib/configs.js';
import { cpuMeter } from './lib/cpu.js';
import { describeProbe, probeSync } from './lib/disk-probe.js';
import type { TunnelOptions } from './lib/e2e-options.js';
import { gatewayUrl, mqttRoute, startAgent, startGateway, withAgentStats } from './lib/ferry-rig.js';
import { startBroker, startSubscriber } from './lib/mqtt-side.js';
import { cpusAllowed } from './lib/proc.js';
import { median } from './lib/stats.js';
import { formatMarkdown, formatTable } from './lib/table.js';
import { fmt, secondsBetween } from './lib/timing.js';

type Say = (line?: string) => void;
type InRound = (fn: (cleanup: Cleanup) => Promise<void>) => Promise<void>;

interface Run {
  /** first send → the subscriber has all N */
  seconds: number;
  /** ferry: first send → the agent answered the last send (durable at the agent) */
  producerSeconds?: number;
  /** ferry: packets the agent sent again after a NACK with retry-after (its `retries` stat), if it reports them */
  agentRetries?: number | null;
  /** CPU seconds per process while the load ran */
  cpu: Record<string, number>;
  cpus: Record<string, string>;
}

async function ferryRun(o: TunnelOptions, brokerUrl: string, brokerPid: number, cleanup: Cleanup): Promise<Run> {
  const n = o.tunnelPackets;
  const dir = await tempDir('ferry-bench-tunnel-', cleanup);
  const sub = await startSubscriber(brokerUrl, 'ferry/#', n, { cpus: o.cpus, cleanup });
  const gw = await startGateway(dir, { routes: mqttRoute(brokerUrl) }, o, cleanup);
  const agent = await startAgent(dir, gatewayUrl(gw, 'tcp'), o, cleanup);
  const procs = [{ name: 'ferry agent', pid: agent.proc.pid }, { name: 'ferry gateway', pid: gw.proc.pid }, { name: 'mosquitto', pid: brokerPid }];
  const cpus = Object.fromEntries(await Promise.all(procs.map(async (p) => [p.name, await cpusAllowed(p.pid)] as const)));
  const cpu = await cpuMeter(procs);
  const producer = runClient('ferry-producer', [agent.socket, String(n), String(o.tunnelWindow), 'bench/packets'], { cpus: o.cpus, cleanup });
  // Stopped at once also on failure: the peer runs that follow must not share the CPUs with them.
  const [p, s, serverCpu, stats] = await Promise.all([producer.result, sub.result])
    .then(async ([p, s]) => [p, s, await cpu.stop(), await localRequest(agent.socket, { op: 'stats' }, 2000).catch(() => null)] as const)
    .catch((err: unknown) => withAgentStats(err, agent.socket))
    .finally(() => Promise.all([producer.proc.stop(), sub.proc.stop(), agent.proc.stop(), gw.proc.stop()]));
  if (p.acked !== n) throw new Error(`ferry producer: ${p.acked} of ${n} answers`);
  return {
    seconds: secondsBetween(p.firstSendNs, s.lastRecvNs), producerSeconds: secondsBetween(p.firstSendNs, p.lastAckNs),
    agentRetries: stats?.ok ? (stats.stats as { retries?: number }).retries ?? null : null,
    cpu: { ...serverCpu, producer: p.cpuSeconds, subscriber: s.cpuSeconds }, cpus: { ...cpus, producer: p.cpus, subscriber: s.cpus },
  };
}

async function peerRun(o: TunnelOptions, window: number, brokerUrl: string, brokerPid: number, cleanup: Cleanup): Promise<Run> {
  const n = o.tunnelPackets;
  const topic = `bench/w${window}`;
  const sub = await startSubscriber(brokerUrl, `${topic}/#`, n, { cpus: o.cpus, cleanup });
  const cpu = await cpuMeter([{ name: 'mosquitto', pid: brokerPid }]);
  const publisher = runClient('mqtt-publisher', [brokerUrl, String(n), String(window), `${topic}/packets`], { cpus: o.cpus, cleanup });
  const [p, s] = await Promise.all([publisher.result, sub.result]);
  const brokerCpu = await cpu.stop();
  if (p.acked !== n) throw new Error(`mqtt-publisher: ${p.acked} of ${n} PUBACKs`);
  return {
    seconds: secondsBetween(p.firstSendNs, s.lastRecvNs), cpu: { ...brokerCpu, 'mqtt.js publisher': p.cpuSeconds, subscriber: s.cpuSeconds },
    cpus: { mosquitto: await cpusAllowed(brokerPid), 'mqtt.js publisher': p.cpus, subscriber: s.cpus },
  };
}

export async function benchTunnel(o: TunnelOptions, inRound: InRound, say: Say): Promise<void> {
  const n = o.tunnelPackets;
  say(`tunnel: ${fmt(n)} packets of 100 bytes, producer window ${o.tunnelWindow}, peer windows ${o.peerWindows.join(', ')}, ${o.rounds} rounds; every process under taskset -c ${o.cpus}; gateway limits: ${process.env.BENCH_GATEWAY_LIMITS || 'defaults'}`);
  const ferry: Run[] = [];
  const peers = o.peerWindows.map(() => [] as Run[]);
  const failures: string[] = [];
  for (let round = 0; round < o.rounds; round++) {
    await inRound(async (cleanup) => {
      const broker = await startBroker(o.cpus, cleanup);
      // Alternate who goes first, so a warmer broker or a quieter machine favours neither side.
      const order = round % 2 === 0 ? ['ferry', ...o.peerWindows] : [...o.peerWindows, 'ferry'];
      const line: string[] = [];
      for (const who of order) {
        const name = who === 'ferry' ? 'ferry' : `peer w=${who}`;
        try {
          if (who === 'ferry') {
            const r = await ferryRun(o, broker.url, broker.pid, cleanup);
            ferry.push(r);
            const retries = r.agentRetries == null ? '' : `, ${fmt(r.agentRetries)} resent after NACK`;
            line.push(`ferry ${fmt(n / r.seconds)}/s (producer acks ${fmt(n / r.producerSeconds!)}/s${retries})`);
          } else {
            const r = await peerRun(o, who as number, broker.url, broker.pid, cleanup);
            peers[o.peerWindows.indexOf(who as number)]!.push(r);
            line.push(`${name} ${fmt(n / r.seconds)}/s`);
          }
        } catch (err) {
          // One failed run (a packet missing, a stall) is reported and fails the benchmark; the other runs still count.
          failures.push(`round ${round + 1}, ${name}: ${(err as Error).message}`);
          line.push(`${name} FAILED`);
        }
      }
      say(`round ${round + 1}: ${line.join(' | ')}; ${describeProbe(probeSync(tmpdir()))}`);
    });
  }
  if (ferry.length > 0 && peers.every((p) => p.length > 0)) report(o, ferry, peers, say);
  else say('tunnel: no table: ferry or a peer has no successful run');
  if (failures.length > 0) {
    say();
    for (const f of failures) say(`FAILED: ${f}`);
    process.exitCode = 1;
  }
}

function report(o: TunnelOptions, ferry: Run[], peers: Run[][], say: Say): void {
  const n = o.tunnelPackets;
  const rate = (rs: Run[], f: (r: Run) => number = (r) => r.seconds): number[] => rs.map((r) => n / f(r));
  const peerMedians = peers.map((p) => median(rate(p)));
  const header = ['tunnel (to the subscriber holding all N)', 'packets/s (median)', 'min–max', ...o.peerWindows.map((w) => `ferry/peer w=${w}`), 'goal ≥ 1.0× peer'];
  const row = (name: string, rates: number[], ratios: boolean): string[] => {
    const m = median(rates);
    const r = peerMedians.map((p) => (ratios ? fmt(m / p, 2) : '-'));
    const goal = ratios ? (peerMedians.every((p) => m >= p) ? 'met' : 'MISSED') : '';
    return [name, fmt(m), `${fmt(Math.min(...rates))}–${fmt(Math.max(...rates))}`, ...r, goal];
  };
  const rows = [
    header,
    row('ferry: agent (durable) → gateway → mqtt handler QoS 1 → mosquitto', rate(ferry), true),
    row('  ferry producer acks (durable at the agent)', rate(ferry, (r) => r.producerSeconds!), false),
    ...o.peerWindows.map((w, i) => row(`peer: mqtt.js QoS 1, window ${w} → mosquitto`, rate(peers[i]!), false)),
  ];
  say();
  say(`tunnel, median of the successful runs (ferry ${ferry.length}, peer ${peers.map((p) => p.length).join('/')} of ${o.rounds} rounds):`);
  say(formatTable(rows));
  say();
  const cpuRows = [['process', 'cpus', 'CPU µs/packet']];
  const add = (title: string, runs: Run[]): void => {
    let total = 0;
    for (const name of Object.keys(runs[0]!.cpu)) {
      const us = (runs.reduce((s, r) => s + (r.cpu[name] ?? 0), 0) / (runs.length * n)) * 1e6;
      total += us;
      cpuRows.push([`${title}: ${name}`, runs[runs.length - 1]!.cpus[name] ?? '?', fmt(us, 1)]);
    }
    cpuRows.push([`${title}: total`, '', fmt(total, 1)]);
  };
  add('ferry', ferry);
  o.peerWindows.forEach((w, i) => add(`peer w=${w}`, peers[i]!));
  say(formatTable(cpuRows));
  say('CPU from /proc/PID/stat for servers (10 ms ticks), process.cpuUsage() for clients; the subscriber from its first message.');
  if (process.env.BENCH_MARKDOWN === '1') say(`\n${formatMarkdown(rows)}\n\n${formatMarkdown(cpuRows)}`);
}

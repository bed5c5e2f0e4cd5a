/**
 * Benchmark `latency`: event → handler latency at a steady rate (default 1,000 packets/s for 20 s
 * after 5 s of warm-up). Each packet carries its send time (process.hrtime, CLOCK_MONOTONIC) taken
 * as it is handed over; a separate MQTT subscriber computes receive time − send time.
 *   ferry: paced sender → agent local socket (durable: fdatasync) → TCP tunnel → gateway → mqtt
 *          handler (QoS 1) → mosquitto → subscriber.
 *   peer:  mqtt.js publishing QoS 1 at the same rate to the same mosquitto → subscriber.
 * The sender is open loop: it keeps the schedule whatever the answers do.
 */
import { tmpdir } from 'node:os';
import type { Cleanup } from './lib/cleanup.js';
import { clientScript } from './lib/client.js';
import { tempDir } from './lib/configs.js';
import { cpuMeter } from './lib/cpu.js';
import { describeProbe, probeSync } from './lib/disk-probe.js';
import type { LatencyOptions } from './lib/e2e-options.js';
import { gatewayUrl, longpollTotals, mqttRoute, startAgent, startGateway, withAgentStats, type Carrier, type LongpollTotals } from './lib/ferry-rig.js';
import { startBroker, startSubscriber, type SubscriberResult } from './lib/mqtt-side.js';
import { pinnedNode, spawnProc } from './lib/proc.js';
import type { Distribution } from './lib/stats.js';
import { formatMarkdown, formatTable } from './lib/table.js';
import { fmt } from './lib/timing.js';
import type { PacedReport } from './clients/paced-sender.js';

type Say = (line?: string) => void;
type InRound = (fn: (cleanup: Cleanup) => Promise<void>) => Promise<void>;

export interface Run {
  side: string;
  /** packets sent, warm-up included */
  sent: number;
  /** ferry over long-poll: the gateway's totals line; else null */
  longpoll: LongpollTotals | null;
  /** send → subscriber, ms, measured packets */
  latency: Distribution;
  /** the slowest packets: s into the measured part, ms */
  slowest: { atS: number; ms: number }[];
  /** send → the sender's answer (ferry: durable at the agent; peer: PUBACK), ms */
  answer: Distribution;
  /** packets/s the sender achieved over the whole run, and its largest burst in one 1 ms tick */
  achievedRate: number;
  /** packets/s the subscriber received, first to last arrival (below achievedRate: the path did not keep up, a backlog grew) */
  receivedRate: number;
  burstMax: number;
  /** CPU % of one vCPU per process over the run */
  cpuPercent: Record<string, number>;
}

/** What `load` needs of the options: the rate and the seconds, and where the processes run. */
export type PacedOptions = Pick<LatencyOptions, 'rate' | 'warmupSeconds' | 'seconds' | 'cpus'>;

/**
 * Runs the paced sender (clients/paced-sender.ts, `mode`) and waits for it and the subscriber
 * (started before, expecting every packet); returns their reports and the servers' CPU.
 * `sender`: further arguments (the api mode's connections) and environment (its token).
 */
export async function load(o: PacedOptions, mode: 'ferry' | 'mqtt' | 'api', dest: string, target: string, sub: { result: Promise<SubscriberResult> }, servers: { name: string; pid: number }[], cleanup: Cleanup, sender: { args?: string[]; env?: Record<string, string> } = {}): Promise<Omit<Run, 'side' | 'longpoll'>> {
  const cpu = await cpuMeter(servers);
  const started = Date.now();
  const args = [mode, dest, String(o.rate), String(o.warmupSeconds), String(o.seconds), target, ...(sender.args ?? [])];
  const proc = spawnProc(`paced-sender ${mode}`, pinnedNode(o.cpus, clientScript('paced-sender'), args), { cleanup, ...(sender.env ? { env: sender.env } : {}) });
  const report = proc.exited.then((exit) => {
    if (exit.code !== 0) throw new Error(`paced-sender ${mode} exited (${exit.signal ?? exit.code}); output:\n${proc.output().slice(-3000)}`);
    return JSON.parse(proc.output().trim().split('\n').pop()!) as PacedReport;
  });
  // The subscriber gives up 30 s after its last packet; the deadline covers a sender waiting for answers that never come.
  const deadlineMs = (o.warmupSeconds + o.seconds) * 1000 + 120_000;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`latency ${mode}: not done within ${deadlineMs} ms`)), deadlineMs)));
  const [p, s] = await Promise.race([Promise.all([report, sub.result]), deadline]).finally(() => clearTimeout(timer));
  const wallSeconds = (Date.now() - started) / 1000;
  const serverCpu = await cpu.stop();
  const cpuPercent = Object.fromEntries([...Object.entries(serverCpu), ['sender', p.cpuSeconds], ['subscriber', s.cpuSeconds]].map(([k, v]) => [k, (100 * (v as number)) / wallSeconds]));
  return {
    latency: s.latencyMs!, slowest: s.slowest, answer: p.answerMs, burstMax: p.burstMax, cpuPercent, sent: p.sent,
    achievedRate: (p.sent - 1) / (Number(BigInt(p.lastSendNs) - BigInt(p.firstSendNs)) / 1e9),
    receivedRate: (s.unique - 1) / (Number(s.lastRecvNs - s.firstRecvNs) / 1e9),
  };
}

/** ferry at a steady rate; `carrier`: the agent reaches the gateway over the TCP tunnel (`latency`) or HTTP long-poll (`longpoll`). */
export async function ferryLatencyRun(o: LatencyOptions, brokerUrl: string, brokerPid: number, cleanup: Cleanup, carrier: Carrier = 'tcp'): Promise<Run> {
  const dir = await tempDir('ferry-bench-latency-', cleanup);
  const total = o.rate * (o.warmupSeconds + o.seconds);
  const sub = await startSubscriber(brokerUrl, 'ferry/#', total, { cpus: o.cpus, cleanup, latency: true });
  const gw = await startGateway(dir, { routes: mqttRoute(brokerUrl), http: carrier === 'longpoll' }, o, cleanup);
  const agent = await startAgent(dir, gatewayUrl(gw, carrier), o, cleanup);
  const servers = [{ name: 'ferry agent', pid: agent.proc.pid }, { name: 'ferry gateway', pid: gw.proc.pid }, { name: 'mosquitto', pid: brokerPid }];
  const r = await load(o, 'ferry', agent.socket, 'bench/latency', sub, servers, cleanup).catch((err: unknown) => withAgentStats(err, agent.socket));
  await Promise.all([agent.proc.stop(), gw.proc.stop()]);
  return { side: 'ferry', ...r, longpoll: carrier === 'longpoll' ? await longpollTotals(gw) : null };
}

async function peerRun(o: LatencyOptions, brokerUrl: string, brokerPid: number, cleanup: Cleanup): Promise<Run> {
  const total = o.rate * (o.warmupSeconds + o.seconds);
  const sub = await startSubscriber(brokerUrl, 'bench/latency/#', total, { cpus: o.cpus, cleanup, latency: true });
  const r = await load(o, 'mqtt', brokerUrl, 'bench/latency/packets', sub, [{ name: 'mosquitto', pid: brokerPid }], cleanup);
  return { side: 'peer', ...r, longpoll: null };
}

export async function benchLatency(o: LatencyOptions, inRound: InRound, say: Say): Promise<void> {
  say(`latency: ${fmt(o.rate)} packets/s of 100 bytes, ${o.warmupSeconds} s warm-up + ${o.seconds} s measured, ${o.latencyRounds} round(s); every process under taskset -c ${o.cpus}; gateway limits: ${process.env.BENCH_GATEWAY_LIMITS || 'defaults'}`);
  const runs: Run[] = [];
  for (let round = 0; round < o.latencyRounds; round++) {
    await inRound(async (cleanup) => {
      const broker = await startBroker(o.cpus, cleanup);
      say(`round ${round + 1}: ${describeProbe(probeSync(tmpdir()))}`);
      const sides = round % 2 === 0 ? [ferryLatencyRun, peerRun] : [peerRun, ferryLatencyRun];
      for (const run of sides) {
        const r = await run(o, broker.url, broker.pid, cleanup);
        runs.push(r);
        say(`round ${round + 1}: ${r.side}: p50 ${fmt(r.latency.p50, 2)} ms, p99 ${fmt(r.latency.p99, 2)} ms, max ${fmt(r.latency.max, 2)} ms (${fmt(r.latency.count)} packets at ${fmt(r.achievedRate)}/s)`);
      }
    });
  }
  const ms = (x: number): string => fmt(x, 2);
  const rows = [['latency, ms (send → subscriber)', 'round', 'p50', 'p90', 'p99', 'p99.9', 'max', 'mean', 'packets', 'goal p99 ≤ 5 ms']];
  const answerRows = [['send → answer, ms', 'round', 'p50', 'p90', 'p99', 'max', 'rate sent/s', 'burst max']];
  const cpuRows = [['CPU % of one vCPU', 'round', ...new Set(runs.flatMap((r) => Object.keys(r.cpuPercent)))]];
  runs.forEach((r, i) => {
    const round = String(Math.floor(i / 2) + 1);
    const name = r.side === 'ferry' ? 'ferry: agent → gateway → mqtt QoS 1 → mosquitto' : 'peer: mqtt.js QoS 1 → mosquitto';
    const l = r.latency;
    rows.push([name, round, ms(l.p50), ms(l.p90), ms(l.p99), ms(l.p999), ms(l.max), ms(l.mean), fmt(l.count), r.side === 'ferry' ? (l.p99 <= 5 ? 'met' : 'MISSED') : '']);
    const a = r.answer;
    answerRows.push([r.side === 'ferry' ? 'ferry: local API answer (durable at the agent)' : 'peer: PUBACK', round, ms(a.p50), ms(a.p90), ms(a.p99), ms(a.max), fmt(r.achievedRate), String(r.burstMax)]);
    cpuRows.push([r.side, round, ...cpuRows[0]!.slice(2).map((k) => (r.cpuPercent[k] === undefined ? '-' : fmt(r.cpuPercent[k]!, 1)))]);
  });
  say();
  for (const t of [rows, answerRows, cpuRows]) {
    say(formatTable(t));
    say();
  }
  for (const r of runs) say(`${r.side}: slowest packets (s into the measured part: ms): ${r.slowest.map((x) => `${x.atS.toFixed(2)}: ${x.ms.toFixed(1)}`).join(', ')}`);
  say('CPU % = CPU seconds over the wall time of the run (warm-up included); servers from /proc/PID/stat, clients from process.cpuUsage().');
  if (process.env.BENCH_MARKDOWN === '1') for (const t of [rows, answerRows, cpuRows]) say(`\n${formatMarkdown(t)}`);
}

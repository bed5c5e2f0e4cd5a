/** The downlink benchmark's runs and its printed tables (bench/downlink.ts). */
import type { DownlinkOptions, DownlinkSource } from './lib/e2e-options.js';
import type { Carrier, LongpollTotals } from './lib/ferry-rig.js';
import { median } from './lib/stats.js';
import type { SyncCount } from './lib/syncs.js';
import { formatMarkdown, formatTable } from './lib/table.js';
import { fmt } from './lib/timing.js';
import type { Run } from './latency.js';

type Say = (line?: string) => void;

/** `intake`: ferry's API into the gateway's queue with no agent connected (throughput only: what the gateway alone takes). */
export type Side = { kind: 'ferry'; carrier: Carrier; source: DownlinkSource } | { kind: 'intake' } | { kind: 'peer' };

export interface LatencyRun extends Omit<Run, 'side'> {
  side: Side;
  rate: number;
}

export interface ThroughputRun {
  side: Side;
  /** the agent's downlink.messagesMax (null: the peer) */
  window: number | null;
  messages: number;
  /** first send → the consumer holds all N */
  seconds: number;
  /** first send → the last send answered (ferry API: 201, durable at the gateway; MQTT: PUBACK) */
  sendSeconds: number;
  /** CPU seconds per process over the run */
  cpu: Record<string, number>;
  /** ferry gateway and agent: fdatasync and fsync calls over the run (perf; null: not countable here); empty when not counted */
  syncs: Record<string, SyncCount | null>;
  longpoll: LongpollTotals | null;
}

const carrierName: Record<Carrier, string> = { tcp: 'TCP tunnel', longpoll: 'long-poll' };

export function label(side: Side): string {
  if (side.kind === 'peer') return 'peer: mqtt.js QoS 1 → mosquitto → subscriber';
  if (side.kind === 'intake') return 'ferry: API → gateway queue only (no agent; until the last 201)';
  return side.source === 'api' ? `ferry: API → ${carrierName[side.carrier]} → local subscriber` : `ferry: MQTT source → ${carrierName[side.carrier]} → local subscriber`;
}

const ms = (x: number): string => fmt(x, 2);
const sameSide = (a: Side, b: Side): boolean => JSON.stringify(a) === JSON.stringify(b);

function latencyTables(runs: LatencyRun[]): string[][][] {
  const peerAt = (rate: number, key: 'p50' | 'p99'): number => median(runs.filter((r) => r.side.kind === 'peer' && r.rate === rate).map((r) => r.latency[key]));
  const rows = [['latency, ms (send → consumer)', 'rate/s', 'p50', 'p90', 'p99', 'p99.9', 'max', 'messages', 'sent/s', 'received/s', 'p50 ÷ peer', 'p99 ÷ peer', 'HTTP requests/message']];
  const answers = [['send → answer, ms (API: 201, durable at the gateway; MQTT: PUBACK)', 'rate/s', 'p50', 'p90', 'p99', 'max', 'burst max']];
  const procs = [...new Set(runs.flatMap((r) => Object.keys(r.cpuPercent)))];
  const cpu = [['CPU % of one vCPU', 'rate/s', ...procs]];
  const sorted = [...runs].sort((a, b) => a.rate - b.rate);
  for (const r of sorted) {
    const l = r.latency;
    const ratio = (key: 'p50' | 'p99'): string => (r.side.kind === 'peer' ? '-' : fmt(l[key] / peerAt(r.rate, key), 1));
    rows.push([label(r.side), fmt(r.rate), ms(l.p50), ms(l.p90), ms(l.p99), ms(l.p999), ms(l.max), fmt(l.count), fmt(r.achievedRate), fmt(r.receivedRate), ratio('p50'), ratio('p99'), r.longpoll ? fmt(r.longpoll.requests / r.sent, 3) : '-']);
    const a = r.answer;
    answers.push([label(r.side), fmt(r.rate), ms(a.p50), ms(a.p90), ms(a.p99), ms(a.max), String(r.burstMax)]);
    cpu.push([label(r.side), fmt(r.rate), ...procs.map((k) => (r.cpuPercent[k] === undefined ? '-' : fmt(r.cpuPercent[k]!, 1)))]);
  }
  return [rows, answers, cpu];
}

function throughputTables(o: DownlinkOptions, runs: ThroughputRun[]): string[][][] {
  const peer = median(runs.filter((r) => r.side.kind === 'peer').map((r) => r.messages / r.seconds));
  // One row per side and window: medians over the rounds.
  const groups: ThroughputRun[][] = [];
  for (const r of runs) {
    const g = groups.find((x) => sameSide(x[0]!.side, r.side) && x[0]!.window === r.window);
    if (g) g.push(r);
    else groups.push([r]);
  }
  const rows = [['throughput (first send → consumer holds all)', 'agent window', 'runs', 'messages', 'seconds', 'messages/s', 'min–max', 'ferry/peer', 'sends answered/s', 'HTTP requests/message']];
  const procs = [...new Set(runs.flatMap((r) => Object.keys(r.cpu)))];
  const synced = [...new Set(runs.flatMap((r) => Object.keys(r.syncs)))];
  const cpu = [['CPU µs per message', 'agent window', ...procs, 'total', ...synced.map((k) => `${k.replace('ferry ', '')} syncs/message`)]];
  for (const g of groups) {
    const first = g[0]!;
    const rates = g.map((r) => r.messages / r.seconds);
    const rate = median(rates);
    const lp = g.every((r) => r.longpoll) ? fmt(median(g.map((r) => r.longpoll!.requests / r.messages)), 4) : '-';
    rows.push([
      label(first.side), first.window === null ? `in flight ${o.concurrency}` : String(first.window), String(g.length), fmt(first.messages), fmt(median(g.map((r) => r.seconds)), 3),
      fmt(rate), `${fmt(Math.min(...rates))}–${fmt(Math.max(...rates))}`, first.side.kind === 'ferry' ? fmt(rate / peer, 2) : '-',
      fmt(median(g.map((r) => r.messages / r.sendSeconds))), lp,
    ]);
    const messages = g.reduce((n, r) => n + r.messages, 0);
    const per = (k: string): number => (g.reduce((s, r) => s + (r.cpu[k] ?? 0), 0) / messages) * 1e6;
    // fdatasync + fsync per message, over the runs that counted them.
    const syncs = (k: string): string => {
      const counts = g.map((r) => r.syncs[k]);
      if (counts.some((c) => c === undefined)) return '-';
      if (counts.some((c) => c === null)) return 'n/a';
      return fmt(counts.reduce((s, c) => s + c!.fdatasync + c!.fsync, 0) / messages, 2);
    };
    cpu.push([label(first.side), first.window === null ? '-' : String(first.window), ...procs.map((k) => (g[0]!.cpu[k] === undefined ? '-' : fmt(per(k), 1))), fmt(procs.reduce((s, k) => s + per(k), 0), 1), ...synced.map(syncs)]);
  }
  return [rows, cpu];
}

export function downlinkReport(o: DownlinkOptions, latency: LatencyRun[], throughput: ThroughputRun[], say: Say): void {
  const tables: string[][][] = [];
  if (latency.length > 0) {
    const t = latencyTables(latency);
    tables.push(...t);
    say();
    say(`latency: open loop, ${o.warmupSeconds} s warm-up + ${o.seconds} s measured per rate; ferry's poster keeps ${o.connections} keep-alive connections; agent window: its default`);
    say('received/s below sent/s: the path did not keep up with the rate, and the latency is mostly the growing backlog.');
    for (const x of t) {
      say(formatTable(x));
      say();
    }
    for (const r of latency) say(`${label(r.side)}, ${fmt(r.rate)}/s: slowest (s into the measured part: ms): ${r.slowest.slice(0, 5).map((x) => `${x.atS.toFixed(2)}: ${x.ms.toFixed(1)}`).join(', ')}`);
    say('CPU % = CPU seconds over the wall time of the run (warm-up included); servers from /proc/PID/stat, clients from process.cpuUsage() (the subscriber from its first message).');
  }
  if (throughput.length > 0) {
    const t = throughputTables(o, throughput);
    tables.push(...t);
    say();
    say(`throughput: ${fmt(o.messages)} messages of 100 bytes, ${o.concurrency} sends in flight (ferry: POSTs in progress; peer: QoS 1 publishes unacknowledged)`);
    for (const x of t) {
      say(formatTable(x));
      say();
    }
    say('sends answered/s: ferry API: 201s (each message durable at the gateway); MQTT: PUBACKs. HTTP requests/message: the gateway\'s long-poll totals / messages.');
    say('syncs/message: fdatasync + fsync calls of the process over the run (perf stat on the syscall tracepoints; BENCH_SYNCS=0 turns it off) / messages.');
  }
  if (process.env.BENCH_MARKDOWN === '1') for (const t of tables) say(`\n${formatMarkdown(t)}`);
}

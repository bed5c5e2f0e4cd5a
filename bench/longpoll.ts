/**
 * Benchmark `longpoll` (issue 11): the HTTP long-poll carrier against the TCP tunnel, side by side
 * in one run, real `ferry agent` and `ferry gateway` processes configured by YAML only (the agent's
 * `gateway:` is tcp://… or http://…; the gateway listens on `listen.http` as well for long-poll).
 *   throughput: agent → gateway, file handler, durable at both, 100-byte packets (ferry-file.ts),
 *               BENCH_ROUNDS rounds alternating which carrier goes first; medians, long-poll/TCP
 *               (goal ≥ 0.7), HTTP requests per packet (goal ≤ 0.05).
 *   latency:    send → subscriber at a steady rate through the mqtt handler (latency.ts).
 *   idle:       gateway VmRSS per idle session: N idle TCP agents (clients/idle-agents.ts) vs N idle
 *               long-poll sessions (clients/idle-longpoll.ts) (idle-agents.ts).
 * HTTP requests come from the gateway's 'gateway: long-poll totals' log line on SIGTERM. Until
 * long-poll is in the build, its runs fail with one clear line each and the TCP runs still report.
 */
import { tmpdir } from 'node:os';
import type { Cleanup } from './lib/cleanup.js';
import { describeProbe, probeSync } from './lib/disk-probe.js';
import type { LongpollOptions, LongpollPart } from './lib/e2e-options.js';
import { LongpollMissing, type Carrier, type LongpollTotals } from './lib/ferry-rig.js';
import { startBroker } from './lib/mqtt-side.js';
import { details } from './lib/report.js';
import { median } from './lib/stats.js';
import { formatMarkdown, formatTable } from './lib/table.js';
import { fmt } from './lib/timing.js';
import { benchFerryFile, type FerryFileResult } from './ferry-file.js';
import { describe, ferryIdleRun, type IdleRun } from './idle-agents.js';
import { ferryLatencyRun, type Run as LatencyRun } from './latency.js';

type Say = (line?: string) => void;
type InRound = (fn: (cleanup: Cleanup) => Promise<void>) => Promise<void>;

const carriers: Carrier[] = ['tcp', 'longpoll'];
const label: Record<Carrier, string> = { tcp: 'TCP tunnel', longpoll: 'long-poll' };
/** Goals from issue 11. */
const ratioGoal = 0.7;
const requestsPerPacketGoal = 0.05;

/** Runs the two carriers, each in its own round (processes and temp dirs gone before the next); a failed run is noted, not fatal. */
class Runner {
  readonly failures: string[] = [];
  /** set by the first LongpollMissing: later long-poll runs are skipped */
  missing: string | null = null;
  constructor(private readonly inRound: InRound, private readonly say: Say) {}

  async run<T>(what: string, carrier: Carrier, fn: (cleanup: Cleanup) => Promise<T>): Promise<T | null> {
    if (carrier === 'longpoll' && this.missing !== null) {
      this.say(`${what}, ${label[carrier]}: skipped (${this.missing})`);
      return null;
    }
    let result: T | null = null;
    await this.inRound(async (cleanup) => {
      try {
        result = await fn(cleanup);
      } catch (err) {
        if (err instanceof LongpollMissing) this.missing = err.message;
        const msg = err instanceof LongpollMissing ? err.message : (err as Error).message;
        this.failures.push(`${what}, ${label[carrier]}: ${msg}`);
        this.say(`${what}, ${label[carrier]}: FAILED: ${msg.split('\n')[0]}`);
      }
    });
    return result;
  }
}

const perPacket = (t: LongpollTotals | null, packets: number): string => (t === null ? '-' : fmt(t.requests / packets, 4));
const goal = (met: boolean): string => (met ? 'met' : 'MISSED');

async function throughput(o: LongpollOptions, r: Runner, say: Say): Promise<string[][]> {
  say(`throughput: ${fmt(o.packets)} packets of 100 bytes, producer window ${o.window}, ${o.rounds} rounds (carriers alternate which goes first), file handler sync always, agent store sync always`);
  const runs: Record<Carrier, FerryFileResult[]> = { tcp: [], longpoll: [] };
  for (let i = 0; i < o.rounds; i++) {
    for (const carrier of i % 2 === 0 ? carriers : [...carriers].reverse()) {
      const f = await r.run(`throughput round ${i + 1}`, carrier, (cleanup) => benchFerryFile(o, cleanup, carrier));
      if (f === null) continue;
      runs[carrier].push(f);
      const req = f.longpoll ? `, ${fmt(f.longpoll.requests)} HTTP requests (${perPacket(f.longpoll, f.packets)}/packet), ${f.longpoll.sessions} session(s)` : '';
      say(`round ${i + 1}: ${label[carrier]}: end to end ${fmt(f.packets / f.endToEndSeconds)}/s, producer acks ${fmt(f.packets / f.producerSeconds)}/s${req}`);
    }
  }
  const rate = (fs: FerryFileResult[], key: 'endToEndSeconds' | 'producerSeconds'): number[] => fs.map((f) => f.packets / f[key]);
  const rows = [['throughput (medians)', 'runs', 'seconds', 'packets/s', 'min–max', `long-poll/TCP (goal ≥ ${ratioGoal})`, `HTTP requests/packet (goal ≤ ${requestsPerPacketGoal})`]];
  for (const [key, what] of [['endToEndSeconds', 'end to end (durable at both)'], ['producerSeconds', 'producer acks (durable at the agent)']] as const) {
    const tcp = median(rate(runs.tcp, key));
    for (const carrier of carriers) {
      const fs = runs[carrier];
      if (fs.length === 0) {
        rows.push([`${label[carrier]}: ${what}`, '0', '-', '-', '-', '-', '-']);
        continue;
      }
      const rates = rate(fs, key);
      const ratio = median(rates) / tcp;
      const rpp = fs.every((f) => f.longpoll) ? median(fs.map((f) => f.longpoll!.requests / f.packets)) : null;
      rows.push([
        `${label[carrier]}: ${what}`, String(fs.length), fmt(median(fs.map((f) => f[key])), 3), fmt(median(rates)), `${fmt(Math.min(...rates))}–${fmt(Math.max(...rates))}`,
        carrier === 'tcp' || runs.tcp.length === 0 ? '-' : `${fmt(ratio, 2)} ${key === 'endToEndSeconds' ? goal(ratio >= ratioGoal) : ''}`.trim(),
        carrier === 'tcp' || rpp === null ? '-' : `${fmt(rpp, 4)} ${key === 'endToEndSeconds' ? goal(rpp <= requestsPerPacketGoal) : ''}`.trim(),
      ]);
    }
  }
  say();
  say(formatTable(rows));
  say();
  for (const carrier of carriers) if (runs[carrier].length > 0) for (const l of details(label[carrier], runs[carrier])) say(l);
  say('HTTP requests/packet: requests the gateway answered (its long-poll totals, the opening request included) / packets delivered.');
  return rows;
}

async function latency(o: LongpollOptions, r: Runner, say: Say): Promise<string[][]> {
  const lo = o.latency;
  say(`latency: ${fmt(lo.rate)} packets/s of 100 bytes, ${lo.warmupSeconds} s warm-up + ${lo.seconds} s measured, ${lo.latencyRounds} round(s); paced sender → agent (sync always) → gateway → mqtt handler QoS 1 → mosquitto → subscriber`);
  const runs: { carrier: Carrier; round: number; run: LatencyRun }[] = [];
  for (let round = 0; round < lo.latencyRounds; round++) {
    for (const carrier of round % 2 === 0 ? carriers : [...carriers].reverse()) {
      // Its own mosquitto per run: a failed run's agent cannot publish into the next run's subscription.
      const run = await r.run(`latency round ${round + 1}`, carrier, async (cleanup) => {
        const broker = await startBroker(o.cpus, cleanup);
        say(`round ${round + 1}, ${label[carrier]}: ${describeProbe(probeSync(tmpdir()))}`);
        return ferryLatencyRun(lo, broker.url, broker.pid, cleanup, carrier);
      });
      if (run === null) continue;
      if (carrier === 'longpoll' && run.longpoll === null) r.failures.push(`latency round ${round + 1}, long-poll: the gateway logged no 'gateway: long-poll totals' line on SIGTERM`);
      runs.push({ carrier, round: round + 1, run });
      const l = run.latency;
      say(`round ${round + 1}: ${label[carrier]}: p50 ${fmt(l.p50, 2)} ms, p99 ${fmt(l.p99, 2)} ms, max ${fmt(l.max, 2)} ms (${fmt(l.count)} packets at ${fmt(run.achievedRate)}/s)`);
    }
  }
  const ms = (x: number): string => fmt(x, 2);
  const rows = [['latency, ms (send → subscriber)', 'round', 'p50', 'p90', 'p99', 'p99.9', 'max', 'packets', 'sent/s', `HTTP requests/packet (goal ≤ ${requestsPerPacketGoal})`]];
  for (const { carrier, round, run } of runs) {
    const l = run.latency;
    const rpp = run.longpoll ? run.longpoll.requests / run.sent : null;
    rows.push([label[carrier], String(round), ms(l.p50), ms(l.p90), ms(l.p99), ms(l.p999), ms(l.max), fmt(l.count), fmt(run.achievedRate), rpp === null ? '-' : `${fmt(rpp, 4)} ${goal(rpp <= requestsPerPacketGoal)}`]);
  }
  const cpuRows = [['CPU % of one vCPU', 'round', ...new Set(runs.flatMap((x) => Object.keys(x.run.cpuPercent)))]];
  for (const { carrier, round, run } of runs) cpuRows.push([label[carrier], String(round), ...cpuRows[0]!.slice(2).map((k) => (run.cpuPercent[k] === undefined ? '-' : fmt(run.cpuPercent[k]!, 1)))]);
  say();
  say(formatTable(rows));
  say();
  say(formatTable(cpuRows));
  say();
  for (const { carrier, run } of runs) say(`${label[carrier]}: slowest packets (s into the measured part: ms): ${run.slowest.map((x) => `${x.atS.toFixed(2)}: ${x.ms.toFixed(1)}`).join(', ')}`);
  say('HTTP requests/packet: requests the gateway answered over the whole run (warm-up included) / packets sent.');
  return rows;
}

async function idle(o: LongpollOptions, r: Runner, say: Say): Promise<string[][]> {
  const io = o.idle;
  const n = io.agents;
  say(`idle: ${fmt(n)} idle sessions per carrier on one gateway each, opened at ${fmt(io.openRate)}/s from ${io.addresses} source addresses, then ${io.idleSeconds} s idle; gateway log level info on both sides`);
  const runs: { carrier: Carrier; run: IdleRun }[] = [];
  for (const carrier of carriers) {
    // Log level info on both sides: the long-poll port is read from an info line, and both then log alike.
    const run = await r.run('idle', carrier, (cleanup) => ferryIdleRun(io, cleanup, carrier, 'info'));
    if (run === null) continue;
    runs.push({ carrier, run });
    const s = run.status;
    const http = s.requests !== undefined ? `; HTTP requests ${fmt(s.requests)}, responses ${fmt(s.responses ?? 0)}` : '';
    say(`${label[carrier]}: RSS ${fmt(median(run.beforeKiB) / 1024, 1)} → ${fmt(median(run.afterKiB) / 1024, 1)} MiB; ${describe(s)}; pings sent ${fmt(s.pingsSent)}, answered ${fmt(s.pongsRx)}${http}`);
  }
  const mib = (kib: number): string => fmt(kib / 1024, 1);
  const perSession = (x: IdleRun): number => (median(x.afterKiB) - median(x.beforeKiB)) / n;
  const tcp = runs.find((x) => x.carrier === 'tcp');
  const rows = [['idle sessions', 'cpus', 'RSS before MiB (median)', 'RSS after MiB (median / min)', 'KiB per session (median / min)', 'vs TCP', 'peak RSS MiB', 'ramp s', 'idle CPU %']];
  for (const { carrier, run } of runs) {
    const before = median(run.beforeKiB);
    rows.push([
      `${label[carrier]}, ${fmt(n)} sessions`, run.cpus, mib(before), `${mib(median(run.afterKiB))} / ${mib(Math.min(...run.afterKiB))}`,
      `${fmt(perSession(run), 1)} / ${fmt((Math.min(...run.afterKiB) - before) / n, 1)}`,
      carrier === 'tcp' || !tcp ? '-' : `${fmt(perSession(run) / perSession(tcp.run), 2)}×`, mib(run.hwmKiB), fmt(run.rampSeconds, 1), fmt(run.idleCpuPercent, 1),
    ]);
  }
  say();
  say(formatTable(rows));
  say();
  for (const { run } of runs) for (const note of run.notes) say(note);
  say('KiB per session = (VmRSS after − before) / N; the GC is not forced (5 samples 2 s apart); kernel socket buffers are not in VmRSS.');
  return rows;
}

export async function benchLongpoll(o: LongpollOptions, inRound: InRound, say: Say): Promise<void> {
  say(`longpoll: HTTP long-poll vs the TCP tunnel, one run; parts: ${o.parts.join(', ')}; every process under taskset -c ${o.cpus}; gateway limits: ${process.env.BENCH_GATEWAY_LIMITS || 'defaults'}`);
  const r = new Runner(inRound, say);
  const parts: Record<LongpollPart, () => Promise<string[][]>> = { throughput: () => throughput(o, r, say), latency: () => latency(o, r, say), idle: () => idle(o, r, say) };
  const tables: string[][][] = [];
  for (const part of o.parts) {
    say();
    tables.push(await parts[part]());
  }
  if (process.env.BENCH_MARKDOWN === '1') for (const t of tables) say(`\n${formatMarkdown(t)}`);
  if (r.failures.length > 0) {
    process.exitCode = 1;
    say();
    say(`longpoll: ${r.failures.length} run(s) FAILED:`);
    for (const f of r.failures) say(`- ${f}`);
  }
}

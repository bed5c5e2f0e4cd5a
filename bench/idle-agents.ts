/**
 * Benchmark `idle`: resident memory per idle agent. One real `ferry gateway` holds N idle agent
 * sessions (default 10,000) opened by bench/clients/idle-agents (HELLO → WELCOME, then PING/PONG
 * only); its VmRSS before any agent connects and after all are welcomed and idle, (after −
 * before) / N. Peer, for reference: mosquitto holding N idle MQTT 5 connections the same way.
 * Limits the gateway would refuse them by are raised in its config (unknown ones are dropped).
 */
import { join } from 'node:path';
import type { Cleanup } from './lib/cleanup.js';
import { clientScript } from './lib/client.js';
import { tempDir } from './lib/configs.js';
import { cpuMeter } from './lib/cpu.js';
import type { IdleOptions } from './lib/e2e-options.js';
import { fileRoute, startGateway, type Carrier } from './lib/ferry-rig.js';
import { startBroker } from './lib/mqtt-side.js';
import { ensureNofile } from './lib/nofile.js';
import { cpusAllowed, pinnedNode, spawnProc, type Proc } from './lib/proc.js';
import { readRss, sampleRss } from './lib/rss.js';
import { median } from './lib/stats.js';
import { formatMarkdown, formatTable } from './lib/table.js';
import { fmt, sleep } from './lib/timing.js';

type Say = (line?: string) => void;
type InRound = (fn: (cleanup: Cleanup) => Promise<void>) => Promise<void>;

/** The idle client's JSON status line (bench/clients/idle-agents.ts, idle-longpoll.ts). */
export interface ClientStatus {
  t: string;
  opened: number;
  welcomed: number;
  lostAfterWelcome: number;
  retries: number;
  gone: number;
  pingsSent: number;
  pongsRx: number;
  pingsRx: number;
  pingIntervalMs: number | null;
  byes: Record<string, number>;
  errors: Record<string, number>;
  open: number;
  /** idle-longpoll only: HTTP requests sent and responses (status 200) received */
  requests?: number;
  responses?: number;
}

export interface IdleRun {
  side: string;
  cpus: string;
  beforeKiB: number[];
  afterKiB: number[];
  hwmKiB: number;
  rampSeconds: number;
  /** % of one vCPU the server used while idle (its pings and timers) */
  idleCpuPercent: number;
  status: ClientStatus;
  notes: string[];
}

function lastStatus(client: Proc): ClientStatus {
  const line = client.output().trim().split('\n').reverse().find((l) => l.startsWith('{"t":'));
  if (!line) throw new Error(`${client.name} printed no status; output:\n${client.output().slice(-2000)}`);
  return JSON.parse(line) as ClientStatus;
}

export const describe = (s: ClientStatus): string =>
  `${s.welcomed} welcomed, ${s.open} open, ${s.gone} gone, ${s.lostAfterWelcome} lost after welcome, ${s.retries} retries; BYEs ${JSON.stringify(s.byes)}; errors ${JSON.stringify(s.errors)}`;

/** The idle client: bench/clients/idle-agents.ts (`ferry`: TCP HELLO; `mqtt`) or idle-longpoll.ts (`longpoll`). */
export type IdleMode = 'ferry' | 'mqtt' | 'longpoll';

/** Baseline, then N idle peers, then idle; the server's RSS before and after. */
export async function measure(o: IdleOptions, side: string, server: { name: string; pid: number }, mode: IdleMode, port: number, cleanup: Cleanup): Promise<Omit<IdleRun, 'notes'>> {
  const n = o.agents;
  await ensureNofile(server.pid, n + 2048);
  await sleep(2000); // let start-up garbage settle
  const before = await sampleRss(server.pid, 3, 500);
  const [script, args] = mode === 'longpoll' ? ['idle-longpoll', []] : ['idle-agents', [mode]];
  const client = spawnProc(`${script} ${mode}`, pinnedNode(o.cpus, clientScript(script), [...args, String(port), String(n), String(o.openRate), String(o.addresses)]), { cleanup });
  await ensureNofile(client.pid, n + 2048);
  const started = Date.now();
  await client.waitFor(/"t":"ramped"/, (n / o.openRate) * 1000 + 120_000);
  const rampSeconds = (Date.now() - started) / 1000;
  const ramped = lastStatus(client);
  if (ramped.welcomed !== n) throw new Error(`${side}: ${describe(ramped)} (of ${n})`);
  const cpu = await cpuMeter([server]);
  const idleStarted = Date.now();
  await sleep(o.idleSeconds * 1000);
  const after = await sampleRss(server.pid, 5, 2000);
  const idleCpu = (await cpu.stop())[server.name]!;
  const status = lastStatus(client);
  if (status.welcomed !== n || status.lostAfterWelcome > 0) throw new Error(`${side} lost sessions while idle: ${describe(status)}`);
  await client.stop();
  return {
    side, cpus: await cpusAllowed(server.pid), beforeKiB: before.map((r) => r.rssKiB), afterKiB: after.map((r) => r.rssKiB),
    hwmKiB: (await readRss(server.pid)).hwmKiB, rampSeconds, idleCpuPercent: (100 * idleCpu) / ((Date.now() - idleStarted) / 1000), status,
  };
}

/**
 * One gateway holding N idle agents reaching it over `carrier`. Log level warn keeps a line per
 * session out of the measurement; long-poll needs info (its port is in an info line).
 */
export async function ferryIdleRun(o: IdleOptions, cleanup: Cleanup, carrier: Carrier = 'tcp', logLevel: 'info' | 'warn' = 'warn'): Promise<IdleRun> {
  const dir = await tempDir('ferry-bench-idle-', cleanup);
  const n = o.agents;
  // Raise whatever would refuse N sessions from a few addresses at openRate/s; keys this build lacks are dropped.
  const limits: Record<string, number> = { connectionsMax: n + 1000, connectionsPerAddressMax: n, agentsMax: n + 1000, sessionsPerSecondMax: Math.max(1000, 4 * o.openRate), sessionsPerAddressPerSecondMax: Math.max(1000, 4 * o.openRate) };
  // A long-poll session holds a socket with its held request, two for a moment when it sends a PONG.
  if (carrier === 'longpoll') Object.assign(limits, { 'longpoll.socketsPerAddressMax': 2 * n + 100, 'longpoll.heldRequestsMax': n + 1000 });
  const gw = await startGateway(dir, { routes: fileRoute(join(dir, 'received.jsonl')), limits, logLevel, http: carrier === 'longpoll' }, o, cleanup);
  const side = carrier === 'tcp' ? 'ferry' : 'ferry long-poll';
  const r = await measure(o, side, { name: 'ferry gateway', pid: gw.proc.pid }, carrier === 'tcp' ? 'ferry' : 'longpoll', carrier === 'tcp' ? gw.port : gw.httpPort!, cleanup);
  await gw.proc.stop();
  const set = Object.entries(gw.limits).map(([k, v]) => `${k} ${v}`).join(', ');
  return { ...r, notes: [`${side}: gateway limits set: ${set || 'none'}${gw.dropped.length > 0 ? `; not in this build: ${gw.dropped.join(', ')}` : ''}; log level ${logLevel}`] };
}

async function peerRun(o: IdleOptions, cleanup: Cleanup): Promise<IdleRun> {
  const broker = await startBroker(o.cpus, cleanup);
  const r = await measure(o, 'mosquitto', { name: 'mosquitto', pid: broker.pid }, 'mqtt', broker.port, cleanup);
  await broker.stop();
  return { ...r, notes: ['mosquitto: test/helpers/mosquitto.ts config (persistence false, max_queued_messages 0), MQTT 5 clients with keep-alive 20 s'] };
}

export async function benchIdle(o: IdleOptions, inRound: InRound, say: Say): Promise<void> {
  const n = o.agents;
  say(`idle: ${fmt(n)} idle agents on one gateway (peer: ${fmt(n)} idle MQTT connections on mosquitto), opened at ${fmt(o.openRate)}/s from ${o.addresses} source addresses, then ${o.idleSeconds} s idle; every process under taskset -c ${o.cpus}`);
  const runs: IdleRun[] = [];
  for (const run of [(o: IdleOptions, c: Cleanup) => ferryIdleRun(o, c), peerRun]) {
    await inRound(async (cleanup) => {
      const r = await run(o, cleanup);
      runs.push(r);
      say(`${r.side}: RSS ${fmt(median(r.beforeKiB) / 1024, 1)} → ${fmt(median(r.afterKiB) / 1024, 1)} MiB; ${describe(r.status)}; pings sent ${fmt(r.status.pingsSent)}, answered ${fmt(r.status.pongsRx)}, from the server ${fmt(r.status.pingsRx)}`);
    });
  }
  const mib = (kib: number): string => fmt(kib / 1024, 1);
  const rows = [['idle sessions', 'cpus', 'RSS before MiB (median)', 'RSS after MiB (median / min)', 'KiB per agent (median / min)', 'peak RSS MiB', 'ramp s', 'idle CPU %', 'goal ≤ 20 KiB']];
  for (const r of runs) {
    const before = median(r.beforeKiB);
    const perMedian = (median(r.afterKiB) - before) / n;
    const perMin = (Math.min(...r.afterKiB) - before) / n;
    rows.push([
      r.side === 'ferry' ? `ferry gateway, ${fmt(n)} agents` : `peer: mosquitto, ${fmt(n)} MQTT clients`, r.cpus, mib(before),
      `${mib(median(r.afterKiB))} / ${mib(Math.min(...r.afterKiB))}`, `${fmt(perMedian, 1)} / ${fmt(perMin, 1)}`, mib(r.hwmKiB),
      fmt(r.rampSeconds, 1), fmt(r.idleCpuPercent, 1), r.side === 'ferry' ? (perMedian <= 20 ? 'met' : 'MISSED') : '',
    ]);
  }
  say();
  say(formatTable(rows));
  say();
  for (const r of runs) for (const note of r.notes) say(note);
  const ferry = runs.find((r) => r.side === 'ferry');
  if (ferry) say(`WELCOME pingIntervalMs: ${ferry.status.pingIntervalMs ?? 'absent (the client pinged every 5000 ms)'}`);
  say('RSS from /proc/PID/status (VmRSS); kernel socket buffers are not in it. The GC is not forced: 5 samples 2 s apart.');
  if (process.env.BENCH_MARKDOWN === '1') say(`\n${formatMarkdown(rows)}`);
}

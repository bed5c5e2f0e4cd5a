/**
 * `npm run bench [-- link|store|tunnel|latency|idle|longpoll|downlink ...]`: runs ferry and its
 * peer in one run and prints them side by side. Benchmarks: `link` (agent → gateway vs mqtt.js → mosquitto), `store`
 * (SegmentStore vs better-sqlite3), `tunnel` (agent → gateway → mqtt handler → subscriber vs
 * mqtt.js → mosquitto → subscriber), `latency` (the same at a steady rate), `idle` (gateway RSS
 * per idle agent vs mosquitto per idle client), `longpoll` (HTTP long-poll vs the TCP tunnel:
 * throughput, latency, idle memory), `downlink` (application → gateway → agent → local
 * consumer vs mqtt.js → mosquitto → subscriber: latency at steady rates, throughput); all by
 * default, or those named as arguments or in BENCH_ONLY (comma-separated). Options (env): BENCH_PACKETS, BENCH_CPUS, BENCH_WINDOW,
 * BENCH_ROUNDS, BENCH_CPU_PROF, BENCH_SYNCS, BENCH_STORE_* (bench/README.md), BENCH_TUNNEL_*,
 * BENCH_LATENCY_*, BENCH_IDLE_*, BENCH_DOWNLINK_* (bench/README-e2e.md), BENCH_LONGPOLL_* (bench/README.md).
 */
import { readFile } from 'node:fs/promises';
import { benchFerryFile } from './ferry-file.js';
import { benchMqttQos1 } from './mqtt-qos1.js';
import { benchDownlink } from './downlink.js';
import { benchIdle } from './idle-agents.js';
import { benchLatency } from './latency.js';
import { Cleanup } from './lib/cleanup.js';
import { downlinkOptions, idleOptions, latencyOptions, longpollOptions, tunnelOptions } from './lib/e2e-options.js';
import { benchLongpoll } from './longpoll.js';
import { describeMachine } from './lib/machine.js';
import { optionsFromEnv, type BenchOptions } from './lib/options.js';
import { benchStore } from './store.js';
import { benchTunnel } from './tunnel-mqtt.js';
import { details, roundLine, table, type Rounds } from './lib/report.js';
import { formatMarkdown, formatTable } from './lib/table.js';
import { fmt } from './lib/timing.js';

const say = (line = ''): void => void process.stdout.write(`${line}\n`);

const benchmarks = ['link', 'store', 'tunnel', 'latency', 'idle', 'longpoll', 'downlink'] as const;
type Benchmark = (typeof benchmarks)[number];

/** The benchmarks named on the command line, else in BENCH_ONLY, else all. */
function selection(argv: string[], env: NodeJS.ProcessEnv): Benchmark[] {
  const names = argv.length > 0 ? argv : env.BENCH_ONLY ? env.BENCH_ONLY.split(',').map((s) => s.trim()) : [...benchmarks];
  for (const n of names) if (!(benchmarks as readonly string[]).includes(n)) throw new Error(`unknown benchmark '${n}' (expected ${benchmarks.join(', ')})`);
  return benchmarks.filter((b) => names.includes(b));
}

async function main(o: BenchOptions, only: Benchmark[]): Promise<void> {
  const m = await describeMachine();
  const load = (await readFile('/proc/loadavg', 'utf8').catch(() => '?')).split(' ').slice(0, 3).join(' ');
  say(`ferry bench ${m.date}: ${m.cpus} CPUs (${m.model}), Node ${m.node}, load average ${load}; benchmarks: ${only.join(', ')}`);
  const parts: [Benchmark, () => Promise<void>][] = [
    ['link', () => benchLink(o)],
    ['store', () => benchStore(o, inRound, say)],
    ['tunnel', () => benchTunnel(tunnelOptions(o), inRound, say)],
    ['latency', () => benchLatency(latencyOptions(o), inRound, say)],
    ['idle', () => benchIdle(idleOptions(o), inRound, say)],
    ['longpoll', () => benchLongpoll(longpollOptions(o), inRound, say)],
    ['downlink', () => benchDownlink(downlinkOptions(o), inRound, say)],
  ];
  let first = true;
  for (const [name, run] of parts) {
    if (!only.includes(name)) continue;
    if (!first) say();
    first = false;
    await run();
  }
}

async function benchLink(o: BenchOptions): Promise<void> {
  say(`${fmt(o.packets)} packets of 100 bytes, window ${o.window}, ${o.rounds} rounds; every benchmarked process under taskset -c ${o.cpus}`);
  const r: Rounds = { ferry: [], peer: [] };
  for (let i = 0; i < o.rounds; i++) {
    // A fresh Cleanup per round: each round's processes and temp dirs are gone before the next starts.
    await inRound(async (cleanup) => {
      const f = await benchFerryFile(o, cleanup);
      const p = await benchMqttQos1(o, cleanup);
      r.ferry.push(f);
      r.peer.push(p);
      say(roundLine(i, f, p));
    });
  }
  const rows = table(r);
  say();
  say(`median of ${o.rounds} rounds:`);
  say(formatTable(rows));
  say();
  for (const l of [...details('ferry', r.ferry), ...details('peer', r.peer)]) say(l);
  say();
  say('note: mosquitto\'s PUBACK does not mean on disk (this broker runs with persistence false; with');
  say('persistence true it still only snapshots every autosave_interval). ferry acks only after fdatasync.');
  if (process.env.BENCH_MARKDOWN === '1') say(`\n${formatMarkdown(rows)}`);
}

let current: Cleanup | null = null;
async function inRound(fn: (cleanup: Cleanup) => Promise<void>): Promise<void> {
  const cleanup = (current = new Cleanup());
  try {
    await fn(cleanup);
  } finally {
    const errors = await cleanup.run();
    current = null;
    for (const e of errors) say(`bench: cleanup: ${e}`);
    if (errors.length > 0) process.exitCode = 1;
  }
}

const onSignal = (signal: NodeJS.Signals): void => {
  say(`\nbench: ${signal}: stopping every process started`);
  void (current?.run() ?? Promise.resolve()).then(() => process.exit(130));
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

try {
  await main(optionsFromEnv(), selection(process.argv.slice(2), process.env));
} catch (err) {
  process.exitCode = 1;
  say(`bench: FAILED: ${(err as Error).message}`);
}

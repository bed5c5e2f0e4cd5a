/**
 * `npm run bench`: runs ferry and its peer in one run and prints them side by side.
 * Options (env): BENCH_PACKETS, BENCH_CPUS, BENCH_WINDOW, BENCH_CPU_PROF, BENCH_SYNCS (README.md).
 */
import { benchFerryFile, type FerryFileResult } from './ferry-file.js';
import { benchMqttQos1, type MqttQos1Result } from './mqtt-qos1.js';
import { Cleanup } from './lib/cleanup.js';
import { describeMachine } from './lib/machine.js';
import { optionsFromEnv, type BenchOptions } from './lib/options.js';
import type { Placed } from './lib/placement.js';
import type { SyncCount } from './lib/syncs.js';
import { formatMarkdown, formatTable } from './lib/table.js';
import { fmt } from './lib/timing.js';

const say = (line = ''): void => void process.stdout.write(`${line}\n`);

function rows(f: FerryFileResult, m: MqttQos1Result): string[][] {
  const peerRate = m.packets / m.seconds;
  const row = (name: string, packets: number, s: number, ratio: boolean): string[] =>
    [name, fmt(packets), fmt(s, 3), fmt(packets / s), ratio ? fmt(packets / s / peerRate, 2) : '-'];
  return [
    ['benchmark', 'packets', 'seconds', 'packets/s', 'ferry/peer'],
    row('ferry agent→gateway, file handler, end to end (durable at both)', f.packets, f.endToEndSeconds, true),
    row('ferry producer acks (durable at the agent)', f.packets, f.producerSeconds, true),
    row('peer: mqtt.js QoS 1 → mosquitto, until last PUBACK', m.packets, m.seconds, false),
  ];
}

function placementLines(title: string, placed: Placed[]): string[] {
  return [`${title}:`, ...placed.map((p) => `  ${p.name.padEnd(18)} pid ${String(p.pid).padEnd(8)} cpus ${p.cpus}`)];
}

function syncLines(syncs: Record<string, SyncCount | null> | null, packets: number): string[] {
  if (!syncs) return [];
  return Object.entries(syncs).map(([name, c]) => c
    ? `  ${name.padEnd(18)} fdatasync ${fmt(c.fdatasync)}  fsync ${fmt(c.fsync)}  (${c.fdatasync + c.fsync > 0 ? `${fmt(packets / (c.fdatasync + c.fsync), 1)} packets per sync` : 'never synced'})`
    : `  ${name.padEnd(18)} not counted (perf stat unavailable)`);
}

async function main(o: BenchOptions, cleanup: Cleanup): Promise<void> {
  const machine = await describeMachine();
  say(`ferry bench ${machine.date}: ${machine.cpus} CPUs (${machine.model}), Node ${machine.node}`);
  say(`packets ${fmt(o.packets)} of 100 bytes, window ${o.window}, every benchmarked process under taskset -c ${o.cpus}`);
  say('running ferry agent → gateway (file handler) ...');
  const ferry = await benchFerryFile(o, cleanup);
  say('running mqtt.js QoS 1 → mosquitto ...');
  const peer = await benchMqttQos1(o, cleanup);
  const table = rows(ferry, peer);
  say();
  say(formatTable(table));
  say();
  for (const l of [...placementLines('placement, ferry', ferry.placement), ...placementLines('placement, peer', peer.placement)]) say(l);
  if (ferry.syncs || peer.syncs) {
    say('sync calls during the run (perf stat tracepoints):');
    for (const l of [...syncLines(ferry.syncs, ferry.packets), ...syncLines(peer.syncs, peer.packets)]) say(l);
  }
  say();
  say('note: mosquitto\'s PUBACK does not mean on disk (this broker runs with persistence false; with');
  say('persistence true it still only snapshots every autosave_interval). ferry acks only after fdatasync.');
  if (process.env.BENCH_MARKDOWN === '1') say(`\n${formatMarkdown(table)}`);
}

const cleanup = new Cleanup();
const onSignal = (signal: NodeJS.Signals): void => {
  say(`\nbench: ${signal}: stopping every process started`);
  void cleanup.run().then(() => process.exit(130));
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

try {
  await main(optionsFromEnv(), cleanup);
} catch (err) {
  process.exitCode = 1;
  say(`bench: FAILED: ${(err as Error).message}`);
} finally {
  const errors = await cleanup.run();
  for (const e of errors) say(`bench: cleanup: ${e}`);
  if (errors.length > 0) process.exitCode = 1;
}

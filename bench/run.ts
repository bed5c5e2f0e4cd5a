/**
 * `npm run bench`: runs ferry and its peer in one run (alternating rounds) and prints them side
 * by side. Options (env): BENCH_PACKETS, BENCH_CPUS, BENCH_WINDOW, BENCH_ROUNDS, BENCH_CPU_PROF,
 * BENCH_SYNCS (bench/README.md).
 */
import { readFile } from 'node:fs/promises';
import { benchFerryFile } from './ferry-file.js';
import { benchMqttQos1 } from './mqtt-qos1.js';
import { Cleanup } from './lib/cleanup.js';
import { describeMachine } from './lib/machine.js';
import { optionsFromEnv, type BenchOptions } from './lib/options.js';
import { details, roundLine, table, type Rounds } from './lib/report.js';
import { formatMarkdown, formatTable } from './lib/table.js';
import { fmt } from './lib/timing.js';

const say = (line = ''): void => void process.stdout.write(`${line}\n`);

async function main(o: BenchOptions): Promise<void> {
  const m = await describeMachine();
  const load = (await readFile('/proc/loadavg', 'utf8').catch(() => '?')).split(' ').slice(0, 3).join(' ');
  say(`ferry bench ${m.date}: ${m.cpus} CPUs (${m.model}), Node ${m.node}, load average ${load}`);
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
  await main(optionsFromEnv());
} catch (err) {
  process.exitCode = 1;
  say(`bench: FAILED: ${(err as Error).message}`);
}

/**
 * `node dist/bench/cli/startup.js`: start-up time of the CLI's local commands against bare
 * `node -e ''`, each run as a new process pinned to one CPU (`taskset -c BENCH_STARTUP_CPU`,
 * default 0), the commands taken in turn so that load from elsewhere falls on all alike.
 * `ferry send` runs against a real agent (no gateway: it answers once the packet is durable).
 * BENCH_STARTUP_RUNS (default 30) runs per command; prints median, p90 and the ratio to bare node.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ferryBin, startFerry, stopProcess } from '../../cli/proc.js';
import { describeMachine } from '../lib/machine.js';
import { median, percentileSorted } from '../lib/stats.js';
import { formatMarkdown } from '../lib/table.js';

const runs = Number(process.env.BENCH_STARTUP_RUNS ?? 30);
const cpu = process.env.BENCH_STARTUP_CPU ?? '0';
const say = (line = ''): void => void process.stdout.write(`${line}\n`);

function timeMs(argv: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('taskset', ['-c', cpu, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-bench-startup-'));
  const socket = join(dir, 'agent.sock');
  const config = join(dir, 'agent.yaml');
  await writeFile(config, `id: bench-startup\ngateway: tcp://127.0.0.1:9\ndataDir: ${join(dir, 'data')}\nsocket: ${socket}\nstore: { sync: none }\n`);
  const agent = startFerry(['agent', '--config', config], { readyPattern: /ferry agent running/ });
  try {
    await agent.ready;
    const node = process.execPath;
    const hasStatus = spawnSync(node, [ferryBin, 'help', 'status'], { stdio: 'ignore' }).status === 0;
    const cases: [string, string[]][] = [
      ["node -e ''", [node, '-e', '']],
      ['ferry --version', [node, ferryBin, '--version']],
      ['ferry send --socket', [node, ferryBin, 'send', '--socket', socket, '--target', 'bench/startup', '--data', '{"t":21.5}']],
      ['ferry send --config', [node, ferryBin, 'send', '--config', config, '--target', 'bench/startup', '--data', '{"t":21.5}']],
      ...(hasStatus ? [['ferry status --socket', [node, ferryBin, 'status', '--socket', socket]] as [string, string[]]] : []),
    ];
    for (const [, argv] of cases) timeMs(argv); // warm the page cache
    const samples = cases.map(() => [] as number[]);
    for (let i = 0; i < runs; i++) cases.forEach(([, argv], k) => samples[k]!.push(timeMs(argv)));
    const base = median(samples[0]!);
    const m = await describeMachine();
    say(`ferry CLI start-up, ${m.date}: ${m.cpus} CPUs (${m.model}), Node ${m.node}; ${runs} runs each under taskset -c ${cpu}${hasStatus ? '' : '; no status command in this build'}`);
    say(formatMarkdown([
      ['command', 'median ms', 'p90 ms', 'median / node'],
      ...cases.map(([name], k) => {
        const s = [...samples[k]!].sort((a, b) => a - b);
        return [name, median(s).toFixed(1), percentileSorted(s, 0.9).toFixed(1), `${(median(s) / base).toFixed(2)}×`];
      }),
    ]));
  } finally {
    await stopProcess(agent);
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});

/**
 * An honest agent's ack latency while hostile agents keep the dispatch log busy, old code
 * (bench/dlog/old-dispatch-log.ts, before issue 10 case 4) against new (gateway/dispatch-log.ts):
 * `npx tsc -p tsconfig.json && node dist/bench/dlog/hostile.js`.
 *
 * In-process, real files in a temp dir (O_DSYNC appends, as the gateway runs). Each scenario:
 * hostile agents are first filled to `gaps` ranges each (every other seq; not measured); then,
 * while each hostile agent goes on sending (a seq that opens a new gap when `admit` lets it,
 * else the one that fills its lowest gap, so it stays at its bound and every group commit
 * carries its records), the honest agent records BENCH_DLOG_ACKS seqs one after the other and
 * the time from `record` to its resolution is measured (what its ACK waits for).
 * Options (env): BENCH_DLOG_ACKS (default 2000), BENCH_DLOG_SCENARIOS (comma-separated scenario numbers, e.g. 1).
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLog } from '../../common/log.js';
import { DispatchLog } from '../../gateway/dispatch-log.js';
import { DispatchLog as OldDispatchLog } from './old-dispatch-log.js';

interface LogLike {
  admit(agent: string, seq: number): { ok: boolean };
  record(agent: string, seq: number): Promise<void>;
  floor(agent: string): number;
  raiseFloor(agent: string, seq: number): void;
  close(): Promise<void>;
  syncs: number;
}

interface Scenario {
  name: string;
  hostileAgents: number;
  gaps: number;
}

const scenarios: Scenario[] = [
  { name: 'one hostile agent at the default bound', hostileAgents: 1, gaps: 4096 },
  { name: '250 hostile agents at the bound (state > compactBytes)', hostileAgents: 250, gaps: 4096 },
  { name: 'one agent with 800k gaps (the issue: no bound; rangesPerAgentMax raised for both)', hostileAgents: 1, gaps: 800_000 },
];
const acks = Number(process.env.BENCH_DLOG_ACKS ?? 2000);
const only = process.env.BENCH_DLOG_SCENARIOS?.split(',').map(Number);

const quantile = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

async function run(kind: 'old' | 'new', s: Scenario): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-bench-dlog-'));
  const opts = { rangesPerAgentMax: s.gaps };
  const d: LogLike = kind === 'old' ? await OldDispatchLog.open(dir, silentLog, opts) : await DispatchLog.open(dir, silentLog, opts);
  const hostile = Array.from({ length: s.hostileAgents }, (_, i) => `hostile-${i}`);
  const top = new Map<string, number>();
  // Fill: every other seq up to the bound, in large batches; seqs past a million (5 bytes each
  // in CBOR, as for an agent that has run a while).
  const base = 1_000_000;
  for (const a of hostile) {
    d.raiseFloor(a, base);
    const writes: Promise<void>[] = [];
    for (let i = 1; i <= s.gaps; i++) writes.push(d.record(a, base + 2 * i));
    top.set(a, base + 2 * s.gaps);
    await Promise.all(writes);
  }
  const syncsBefore = d.syncs;
  let stop = false;
  const hostileLoop = async (): Promise<void> => {
    while (!stop) {
      const writes: Promise<void>[] = [];
      for (const a of hostile.slice(0, 8)) {
        const next = top.get(a)! + 2;
        if (d.admit(a, next).ok) {
          top.set(a, next);
          writes.push(d.record(a, next));
        } else writes.push(d.record(a, d.floor(a) + 1));
      }
      // Rotate, so over time every hostile agent writes.
      hostile.push(...hostile.splice(0, 8));
      await Promise.all(writes);
    }
  };
  const hostileDone = hostileLoop();
  const latencies: number[] = [];
  const t0 = process.hrtime.bigint();
  for (let seq = 1; seq <= acks; seq++) {
    const t = process.hrtime.bigint();
    await d.record('honest', seq);
    latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  stop = true;
  await hostileDone;
  const syncs = d.syncs - syncsBefore;
  const compactions = (d as { compactions?: number }).compactions;
  await d.close();
  const fileBytes = (await stat(join(dir, 'dispatched.log'))).size;
  await rm(dir, { recursive: true, force: true });
  const f = (ms: number): string => ms.toFixed(ms < 10 ? 2 : 0);
  return [kind, f(quantile(latencies, 0.5)), f(quantile(latencies, 0.99)), f(Math.max(...latencies)), (acks / seconds).toFixed(0), String(syncs), compactions === undefined ? 'n/a' : String(compactions), (fileBytes / 1024 / 1024).toFixed(1)];
}

console.log(`dispatch log under hostile agents: ${acks} honest records, one at a time; Node ${process.version}`);
for (const [i, s] of scenarios.entries()) {
  if (only && !only.includes(i)) continue;
  console.log(`\n### ${i}: ${s.name} (${s.hostileAgents} × ${s.gaps} gaps)\n`);
  console.log('| code | honest ack p50 ms | p99 ms | max ms | honest acks/s | group commits | compactions | file MiB at end |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const kind of ['old', 'new'] as const) console.log(`| ${(await run(kind, s)).join(' | ')} |`);
}

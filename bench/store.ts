/**
 * Benchmark: the agent's store (SegmentStore) against better-sqlite3 in one run: durable append +
 * ack throughput and bytes written, RSS with a backlog, open and recovery time with a large
 * backlog, write amplification. Every store operation runs in its own pinned worker process
 * (bench/store/worker.ts), so /proc/self/io and RSS are one side's.
 */
import type { Cleanup } from './lib/cleanup.js';
import type { BenchOptions } from './lib/options.js';
import { ensureBetterSqlite3 } from './lib/peers.js';
import { formatMarkdown, formatTable } from './lib/table.js';
import { footprint, type FootprintRuns } from './store/footprint.js';
import { storeOptionsFromEnv } from './store/options.js';
import { recovery, type RecoveryRuns } from './store/recovery.js';
import { footprintTable, recoveryNotes, throughputDetails, throughputTable } from './store/report.js';
import { cells, throughputRound, type CellRuns } from './store/throughput.js';
import type { Side } from './store/task.js';

export type InRound = (fn: (cleanup: Cleanup) => Promise<void>) => Promise<void>;

export async function benchStore(base: BenchOptions, inRound: InRound, say: (line?: string) => void): Promise<void> {
  const o = storeOptionsFromEnv(base);
  await ensureBetterSqlite3(say);
  const backlogLabel = `${o.backlogMiB >= 1024 ? `${o.backlogMiB / 1024} GiB` : `${o.backlogMiB} MiB`} (${o.backlogRecordBytes} B records)`;
  say(`store: ferry SegmentStore vs better-sqlite3 (WAL, synchronous=FULL); every worker under taskset -c ${o.cpus}${o.nodeArgs.length > 0 ? `, node ${o.nodeArgs.join(' ')}` : ''}`);
  const started = Date.now();

  const runs: CellRuns[] = cells.map((cell) => ({ cell, ferry: [], sqlite: [] }));
  if (o.parts.has('throughput')) {
    say(`append + ack: ${o.batches} batches per cell (records = batches × producers), ${o.rounds} rounds`);
    for (let round = 0; round < o.rounds; round++) await inRound((cleanup) => throughputRound(o, round, runs, cleanup, say));
  }
  const fp: Partial<Record<Side, FootprintRuns>> = {};
  const rc: Partial<Record<Side, RecoveryRuns>> = {};
  for (const side of ['ferry', 'sqlite'] as Side[]) {
    if (o.parts.has('footprint')) {
      say(`footprint: ${side}: filling ${o.rssRecords.toLocaleString('en-US')} × 100 B, then RSS after open + read-through`);
      await inRound(async (cleanup) => { fp[side] = await footprint(o, side, cleanup); });
    }
    if (o.parts.has('recovery')) {
      say(`recovery: ${side}: filling ${backlogLabel}, then ${o.opens} warm opens, a cold open, an open after SIGKILL`);
      await inRound(async (cleanup) => { rc[side] = await recovery(o, side, cleanup); });
    }
  }

  const tables = [
    ...(o.parts.has('throughput') ? [throughputTable(runs), throughputDetails(runs)] : []),
    footprintTable({ footprint: fp, recovery: rc, cells: runs, rssRecords: o.rssRecords, backlogLabel }),
  ];
  say();
  say(`store benchmark, ${Math.round((Date.now() - started) / 1000)} s (medians of ${o.rounds} rounds where there are rounds):`);
  for (const t of tables) {
    say(formatTable(t));
    say();
  }
  for (const l of recoveryNotes(rc)) say(l);
  say('bytes written = /proc/self/io write_bytes of the worker (pages it dirtied; the ext4 journal is not counted); payload = data bytes appended');
  if (process.env.BENCH_MARKDOWN === '1') for (const t of tables) say(`\n${formatMarkdown(t)}`);
}

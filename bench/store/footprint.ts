/**
 * Memory with a backlog: a store holding `rssRecords` un-acked 100-byte records, opened and read
 * through in a fresh process, against an empty store in another, and against a backlog of 1 % of
 * the records (which runs the same read path, so what differs from it is what grows with the
 * backlog). The fill that builds the backlog (sync none, appends in flight together) also gives
 * the bulk write amplification.
 */
import type { Cleanup } from '../lib/cleanup.js';
import { tempDir } from '../lib/configs.js';
import type { StoreBenchOptions } from './options.js';
import { runWorker } from './run-worker.js';
import type { FillResult, FootprintResult, Side } from './task.js';

export const rssRecordBytes = 100;
const readBatch = 1000;

export interface FootprintRuns {
  fill: FillResult;
  empty: FootprintResult;
  /** a backlog of 1 % of `rssRecords` */
  small: FootprintResult;
  backlog: FootprintResult;
}

export async function footprint(o: StoreBenchOptions, side: Side, cleanup: Cleanup): Promise<FootprintRuns> {
  const w = { cpus: o.cpus, cleanup, nodeArgs: o.nodeArgs };
  const emptyDir = await tempDir(`ferry-bench-empty-${side}-`, cleanup);
  const empty = (await runWorker({ op: 'footprint', side, dir: emptyDir, readBatch }, w)).result;
  const smallDir = await tempDir(`ferry-bench-rss-small-${side}-`, cleanup);
  const smallRecords = Math.max(1, Math.round(o.rssRecords / 100));
  await runWorker({ op: 'fill', side, dir: smallDir, recordBytes: rssRecordBytes, records: smallRecords }, w);
  const small = (await runWorker({ op: 'footprint', side, dir: smallDir, readBatch }, w)).result;
  const dir = await tempDir(`ferry-bench-rss-${side}-`, cleanup);
  const fill = (await runWorker({ op: 'fill', side, dir, recordBytes: rssRecordBytes, records: o.rssRecords }, w)).result;
  const backlog = (await runWorker({ op: 'footprint', side, dir, readBatch }, w)).result;
  for (const [r, n] of [[small, smallRecords], [backlog, o.rssRecords]] as const) {
    if (r.recordsRead !== n) throw new Error(`${side}: read ${r.recordsRead} of the ${n} records in the backlog`);
  }
  return { fill, empty, small, backlog };
}

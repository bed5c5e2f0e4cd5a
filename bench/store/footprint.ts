/**
 * Memory with a backlog: a store holding `rssRecords` un-acked 100-byte records, opened and read
 * through in a fresh process, against an empty store in another. The fill that builds the
 * backlog (sync none, appends in flight together) also gives the bulk write amplification.
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
  backlog: FootprintResult;
}

export async function footprint(o: StoreBenchOptions, side: Side, cleanup: Cleanup): Promise<FootprintRuns> {
  const w = { cpus: o.cpus, cleanup };
  const emptyDir = await tempDir(`ferry-bench-empty-${side}-`, cleanup);
  const empty = (await runWorker({ op: 'footprint', side, dir: emptyDir, readBatch }, w)).result;
  const dir = await tempDir(`ferry-bench-rss-${side}-`, cleanup);
  const fill = (await runWorker({ op: 'fill', side, dir, recordBytes: rssRecordBytes, records: o.rssRecords }, w)).result;
  const backlog = (await runWorker({ op: 'footprint', side, dir, readBatch }, w)).result;
  if (backlog.recordsRead !== o.rssRecords) throw new Error(`${side}: read ${backlog.recordsRead} of the ${o.rssRecords} records in the backlog`);
  return { fill, empty, backlog };
}

/**
 * Durable append + ack throughput, ferry's SegmentStore against better-sqlite3, each cell in a
 * fresh store directory and a fresh pinned process per side; the sides alternate which goes first.
 */
import type { Cleanup } from '../lib/cleanup.js';
import { tempDir } from '../lib/configs.js';
import type { SyncCount } from '../lib/syncs.js';
import type { StoreBenchOptions } from './options.js';
import { runWorker } from './run-worker.js';
import type { AppendAckResult, Side } from './task.js';

export interface Cell {
  recordBytes: number;
  producers: number;
}

export const cells: Cell[] = [
  { recordBytes: 100, producers: 1 },
  { recordBytes: 100, producers: 16 },
  { recordBytes: 1024, producers: 1 },
  { recordBytes: 1024, producers: 16 },
];

export interface SideRun extends AppendAckResult {
  pid: number;
  syncs: SyncCount | null;
}

export interface CellRuns {
  cell: Cell;
  ferry: SideRun[];
  sqlite: SideRun[];
}

export const cellName = (c: Cell): string => `${c.recordBytes === 1024 ? '1 KiB' : `${c.recordBytes} B`} × ${c.producers} producer${c.producers === 1 ? '' : 's'}`;

/** One round: every cell once per side. */
export async function throughputRound(o: StoreBenchOptions, round: number, runs: CellRuns[], cleanup: Cleanup, say: (l: string) => void): Promise<void> {
  for (const [i, cell] of cells.entries()) {
    const sides: Side[] = (round + i) % 2 === 0 ? ['ferry', 'sqlite'] : ['sqlite', 'ferry'];
    const line: string[] = [];
    for (const side of sides) {
      const dir = await tempDir(`ferry-bench-store-${side}-`, cleanup);
      const records = o.batches * cell.producers;
      const { result, pid, syncs } = await runWorker({ op: 'append-ack', side, dir, recordBytes: cell.recordBytes, producers: cell.producers, records },
        { cpus: o.cpus, cleanup, nodeArgs: o.nodeArgs, countSyncs: o.countSyncs, cpuProfDir: side === 'ferry' ? o.cpuProfDir : null });
      runs[i]![side].push({ ...result, pid, syncs });
      line.push(`${side} ${Math.round(result.records / result.seconds).toLocaleString('en-US')}/s`);
    }
    say(`  round ${round + 1}, ${cellName(cell)}: ${line.join(', ')}`);
  }
}

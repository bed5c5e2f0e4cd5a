/**
 * Open and recovery time with a large backlog (1 GiB of payload by default): built quickly
 * (ferry: sync none; sqlite: synchronous OFF) and closed, then opened in fresh processes: warm
 * (page cache holds the files), cold (after drop_caches, where permitted), and after a SIGKILL
 * during durable appends (ferry's newest segment also gets a torn record at its end).
 */
import { execFile } from 'node:child_process';
import { appendFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Cleanup } from '../lib/cleanup.js';
import { tempDir } from '../lib/configs.js';
import type { StoreBenchOptions } from './options.js';
import { crashWorker, runWorker } from './run-worker.js';
import type { FillResult, OpenResult, Side } from './task.js';

export interface RecoveryRuns {
  fill: FillResult;
  warm: OpenResult[];
  /** null: not attempted (BENCH_STORE_DROP_CACHES=0) or not permitted (see coldNote) */
  cold: OpenResult | null;
  coldNote: string;
  afterKill: OpenResult;
}

/** Writes back dirty pages, then drops the page cache; a message if this machine does not allow it. */
export async function dropCaches(): Promise<string | null> {
  try {
    await promisify(execFile)('sync');
    await writeFile('/proc/sys/vm/drop_caches', '3');
    return null;
  } catch (err) {
    return `drop_caches not permitted (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
}

/** A record frame cut short, as a power cut in the middle of a write leaves it: a length of 1000, a CRC, then 100 bytes. */
async function tearTail(dir: string): Promise<void> {
  const segs = (await readdir(dir)).filter((n) => n.endsWith('.seg')).sort();
  const newest = segs[segs.length - 1];
  if (!newest) throw new Error(`${dir}: no segment file to tear`);
  const torn = Buffer.alloc(108, 0x5a);
  torn.writeUInt32BE(1000, 0);
  await appendFile(join(dir, newest), torn);
}

export async function recovery(o: StoreBenchOptions, side: Side, cleanup: Cleanup): Promise<RecoveryRuns> {
  const w = { cpus: o.cpus, cleanup, nodeArgs: o.nodeArgs };
  const dir = await tempDir(`ferry-bench-recovery-${side}-`, cleanup);
  const records = Math.floor((o.backlogMiB * 1024 * 1024) / o.backlogRecordBytes);
  const fill = (await runWorker({ op: 'fill', side, dir, recordBytes: o.backlogRecordBytes, records }, w)).result;
  const warm: OpenResult[] = [];
  for (let i = 0; i < o.opens; i++) warm.push((await runWorker({ op: 'open', side, dir }, { ...w, cpuProfDir: side === 'ferry' && i === 0 ? o.cpuProfDir : null })).result);
  let cold: OpenResult | null = null;
  let coldNote = 'not attempted (BENCH_STORE_DROP_CACHES=0)';
  if (o.dropCaches) {
    const refused = await dropCaches();
    if (refused === null) {
      cold = (await runWorker({ op: 'open', side, dir }, w)).result;
      coldNote = 'after sync; echo 3 > /proc/sys/vm/drop_caches';
    } else {
      coldNote = refused;
    }
  }
  await crashWorker({ op: 'crash-load', side, dir, recordBytes: o.backlogRecordBytes }, w, 300);
  if (side === 'ferry') await tearTail(dir);
  const afterKill = (await runWorker({ op: 'open', side, dir }, w)).result;
  return { fill, warm, cold, coldNote, afterKill };
}

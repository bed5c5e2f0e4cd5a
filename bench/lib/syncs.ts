/**
 * Counts a process's fsync and fdatasync calls with `perf stat` on the syscall tracepoints (kernel
 * counters, no stop per call, so the process runs at full speed). Needs perf and the permission to
 * use tracepoints (root, or perf_event_paranoid <= -1); without them the count is null.
 */
import type { Cleanup } from './cleanup.js';
import { spawnProc, type Proc } from './proc.js';
import { sleep } from './timing.js';

export interface SyncCount {
  fdatasync: number;
  fsync: number;
}

export interface SyncCounter {
  /** stops counting and resolves with the counts, or null if perf could not count */
  stop(): Promise<SyncCount | null>;
}

const events = ['syscalls:sys_enter_fdatasync', 'syscalls:sys_enter_fsync'];

export async function countSyncs(name: string, pid: number, cleanup: Cleanup): Promise<SyncCounter> {
  // -p attaches to the threads that exist now: libuv's pool threads (which run the syncs) were
  // started when the process opened its files, before it printed its ready line.
  let perf: Proc;
  try {
    perf = spawnProc(`perf stat ${name}`, ['perf', ['stat', '-x', ',', '-e', events.join(','), '-p', String(pid)]], { cleanup });
  } catch {
    return { stop: async () => null }; // no perf on this machine
  }
  await sleep(200); // let perf attach before the load starts
  return {
    async stop() {
      if (perf.child.exitCode === null && perf.child.signalCode === null) process.kill(perf.pid, 'SIGINT');
      await perf.exited;
      const count = (event: string): number | null => {
        // -x , lines: COUNT,UNIT,EVENT,...
        const fields = perf.output().split('\n').map((l) => l.split(',')).find((f) => f[2] === event);
        const n = fields ? Number(fields[0]) : NaN;
        return Number.isFinite(n) ? n : null;
      };
      const fdatasync = count(events[0]!);
      const fsync = count(events[1]!);
      return fdatasync === null || fsync === null ? null : { fdatasync, fsync };
    },
  };
}

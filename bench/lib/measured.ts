/** What every benchmark reports besides its time: where each process ran and what it spent. */
import { cpusAllowed } from './proc.js';
import type { SyncCount } from './syncs.js';

export interface Placed {
  name: string;
  pid: number;
  cpus: string;
}

export interface Measured {
  packets: number;
  placement: Placed[];
  /** CPU seconds (user + system) per process while the load ran */
  cpu: Record<string, number>;
  /** fsync/fdatasync calls per process while the load ran; null if not counted */
  syncs: Record<string, SyncCount | null> | null;
}

/** The CPU list of each running process, read from /proc. */
export async function placement(procs: { name: string; pid: number }[]): Promise<Placed[]> {
  return Promise.all(procs.map(async (p) => ({ name: p.name, pid: p.pid, cpus: await cpusAllowed(p.pid) })));
}

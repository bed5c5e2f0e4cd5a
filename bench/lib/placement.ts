/** Where each benchmarked process was allowed to run, read from /proc while it runs. */
import { cpusAllowed } from './proc.js';

export interface Placed {
  name: string;
  pid: number;
  cpus: string;
}

export async function placement(procs: { name: string; pid: number }[]): Promise<Placed[]> {
  return Promise.all(procs.map(async (p) => ({ name: p.name, pid: p.pid, cpus: await cpusAllowed(p.pid) })));
}

/** What the numbers were measured on. */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';

export interface Machine {
  date: string;
  cpus: number;
  model: string;
  node: string;
}

export async function describeMachine(): Promise<Machine> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  return {
    date: new Date().toISOString(),
    cpus: availableParallelism(),
    model: cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1] ?? 'unknown',
    node: process.version,
  };
}

/** CPU time (user + system) a process spent, from /proc/PID/stat, in seconds (10 ms resolution). */
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';

let ticksPerSecond: number | null = null;
function clockTicks(): number {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return ticksPerSecond;
}

export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The fields after "(comm) ": state is field 3 of stat(5); utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicks();
}

/** CPU seconds each process spends between `cpuMeter()` and `stop()`. */
export async function cpuMeter(procs: { name: string; pid: number }[]): Promise<{ stop(): Promise<Record<string, number>> }> {
  const start = await Promise.all(procs.map((p) => cpuSeconds(p.pid)));
  return {
    async stop() {
      const end = await Promise.all(procs.map((p) => cpuSeconds(p.pid)));
      return Object.fromEntries(procs.map((p, i) => [p.name, end[i]! - start[i]!]));
    },
  };
}

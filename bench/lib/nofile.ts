/** Open-file limits for benchmarks that hold many sockets in one process. */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';

/** This process's soft RLIMIT_NOFILE (children inherit it), from /proc/self/limits. */
export function nofileSoft(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m?.[1] === undefined || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

/**
 * Raises a running process's open-file limit (soft and hard) to `n` with `prlimit --pid`, if the
 * limit it inherited is lower. Above the hard limit this needs root.
 */
export async function ensureNofile(pid: number, n: number): Promise<void> {
  if (n <= nofileSoft()) return;
  await promisify(execFile)('prlimit', ['--pid', String(pid), `--nofile=${n}:${n}`]);
}

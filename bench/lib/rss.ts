/** Resident memory of a running process, from /proc/PID/status. */
import { readFile } from 'node:fs/promises';
import { sleep } from './timing.js';

export interface Rss {
  /** VmRSS, KiB */
  rssKiB: number;
  /** VmHWM (peak RSS so far), KiB */
  hwmKiB: number;
}

export async function readRss(pid: number): Promise<Rss> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string): number => {
    const m = new RegExp(`^${key}:\\s*(\\d+) kB`, 'm').exec(status);
    if (!m) throw new Error(`/proc/${pid}/status has no ${key}`);
    return Number(m[1]);
  };
  return { rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM') };
}

/** `n` readings `everyMs` apart (the first at once). */
export async function sampleRss(pid: number, n: number, everyMs: number): Promise<Rss[]> {
  const out: Rss[] = [];
  for (let i = 0; i < n; i++) {
    if (i > 0) await sleep(everyMs);
    out.push(await readRss(pid));
  }
  return out;
}

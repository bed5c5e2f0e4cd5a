/** Watches a file that another process appends lines to, until it holds `n` lines. */
import { open, type FileHandle } from 'node:fs/promises';
import { nowNs, sleep } from './timing.js';

export interface LineWatch {
  /** resolves with the monotonic time (ns) at which the n-th line was seen */
  done: Promise<bigint>;
  lines(): number;
  stop(): void;
}

/**
 * Polls the file's size every `pollMs` (a stat per poll; the new bytes are read only when it grew)
 * and counts newlines. Rejects if no new line arrives for `stallMs`.
 */
export function watchLines(path: string, n: number, opts: { pollMs?: number; stallMs?: number } = {}): LineWatch {
  const pollMs = opts.pollMs ?? 2;
  const stallMs = opts.stallMs ?? 30_000;
  let count = 0;
  let stopped = false;
  const done = (async () => {
    let fh: FileHandle | null = null;
    let offset = 0;
    let lastProgress = Date.now();
    const chunk = Buffer.alloc(1 << 20);
    try {
      while (!stopped) {
        fh ??= await open(path, 'r').catch(() => null);
        const size = fh ? (await fh.stat()).size : 0;
        while (fh && offset < size) {
          const { bytesRead } = await fh.read(chunk, 0, Math.min(chunk.length, size - offset), offset);
          if (bytesRead === 0) break;
          for (let i = 0; i < bytesRead; i++) if (chunk[i] === 10) count++;
          offset += bytesRead;
          lastProgress = Date.now();
        }
        if (count >= n) return nowNs();
        if (Date.now() - lastProgress > stallMs) throw new Error(`${path}: ${count} of ${n} lines, none new for ${stallMs} ms`);
        await sleep(pollMs);
      }
      throw new Error(`${path}: watch stopped at ${count} of ${n} lines`);
    } finally {
      await fh?.close();
    }
  })();
  done.catch(() => undefined);
  return { done, lines: () => count, stop: () => { stopped = true; } };
}

/**
 * The file handler's helpers for what lies outside the current file: rotated files NAME.1 …
 * NAME.KEEP and the high-water marks of every agent (`.NAME.seqs` beside it), which keep
 * de-duplication right after rotated files were deleted.
 */
import { createReadStream } from 'node:fs';
import { readFile, rename, unlink } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../../common/durable-file.js';

/** Highest seq written per agent. */
export type SeqMarks = Map<string, number>;

export function rotatedPath(path: string, n: number): string {
  return `${path}.${n}`;
}

export function seqsPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.seqs`);
}

export function mark(marks: SeqMarks, agent: string, seq: number): void {
  if (seq > (marks.get(agent) ?? 0)) marks.set(agent, seq);
}

/**
 * Reads the packet lines of `path` (up to `size` bytes) into `marks`; returns the bytes of whole
 * lines, so that the caller can cut a torn last line. A missing file counts as empty.
 */
export async function scanLines(path: string, marks: SeqMarks, size = Infinity): Promise<number> {
  let goodBytes = 0;
  const input = createReadStream(path);
  const missing = new Promise<boolean>((resolve) => {
    input.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ENOENT'));
    input.once('open', () => resolve(false));
  });
  if (await missing) return 0;
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    const lineEnd = goodBytes + Buffer.byteLength(line) + 1;
    if (lineEnd > size) break;
    goodBytes = lineEnd;
    try {
      const v = JSON.parse(line) as { agent?: unknown; seq?: unknown };
      if (typeof v.agent === 'string' && typeof v.seq === 'number') mark(marks, v.agent, v.seq);
    } catch {
      /* not ours: leave it */
    }
  }
  return goodBytes;
}

/**
 * The marks of everything before the current file: `.NAME.seqs` plus a scan of NAME.1 (at most
 * rotateBytes, and it covers a marks file older than the last rename); if the marks file is
 * missing or unreadable, a scan of every rotated file that exists.
 */
export async function readOlderMarks(path: string, keep: number): Promise<SeqMarks> {
  const marks: SeqMarks = new Map();
  let saved: unknown;
  try {
    saved = JSON.parse(await readFile(seqsPath(path), 'utf8'));
  } catch {
    /* missing or damaged: rebuilt from the rotated files */
  }
  if (saved !== null && typeof saved === 'object') {
    for (const [agent, seq] of Object.entries(saved)) if (typeof seq === 'number') mark(marks, agent, seq);
    await scanLines(rotatedPath(path, 1), marks);
    return marks;
  }
  for (let n = 1; n <= keep; n++) await scanLines(rotatedPath(path, n), marks);
  return marks;
}

async function ignoreMissing(p: Promise<void>): Promise<void> {
  await p.catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

/**
 * Moves NAME to NAME.1, NAME.1 to NAME.2 …, deleting NAME.KEEP, after saving `marks` (which
 * cover every line of every file) to `.NAME.seqs`. Each step is a rename, so a crash at any point
 * leaves each line in exactly one file; a gap in the numbers left by a crash closes at the next
 * rotation. The caller opens the new NAME and syncs the directory (`durable`) before using it.
 */
export async function rotate(path: string, keep: number, marks: SeqMarks): Promise<void> {
  await writeFileAtomic(seqsPath(path), JSON.stringify(Object.fromEntries(marks)));
  await ignoreMissing(unlink(rotatedPath(path, keep)));
  for (let n = keep - 1; n >= 1; n--) await ignoreMissing(rename(rotatedPath(path, n), rotatedPath(path, n + 1)));
  await rename(path, rotatedPath(path, 1));
}

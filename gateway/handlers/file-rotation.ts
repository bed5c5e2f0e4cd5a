/**
 * The file handler's helpers for what lies outside the current file: rotated files NAME.1 …
 * NAME.KEEP and the seqs written for every agent (`.NAME.seqs` beside it), which keep
 * de-duplication right after rotated files were deleted. `.NAME.seqs` is JSON, agent → ranges
 * ([[from, to], …], inclusive); a single number (the format before exact sets) means every seq
 * up to it.
 */
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../../common/durable-file.js';
import type { FileHandle, Files } from '../../common/files.js';
import { RangeSet } from '../../common/range-set.js';

/** Seqs written per agent, exactly: lanes let targets overtake each other, so no high mark will do. */
export type SeqMarks = Map<string, RangeSet>;

export function rotatedPath(path: string, n: number): string {
  return `${path}.${n}`;
}

export function seqsPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.seqs`);
}

export function mark(marks: SeqMarks, agent: string, from: number, to = from): void {
  let set = marks.get(agent);
  if (!set) marks.set(agent, (set = new RangeSet()));
  set.add(from, to);
}

export function isMarked(marks: SeqMarks, agent: string, seq: number): boolean {
  return marks.get(agent)?.has(seq) ?? false;
}

/** Reads a saved `.NAME.seqs` value for one agent into `marks`: ranges, or (older format) a number meaning 0..it. */
function markSaved(marks: SeqMarks, agent: string, saved: unknown): void {
  if (typeof saved === 'number') return mark(marks, agent, 0, saved);
  if (!Array.isArray(saved)) return;
  for (const r of saved) if (Array.isArray(r) && typeof r[0] === 'number' && typeof r[1] === 'number') mark(marks, agent, r[0], r[1]);
}

const scanChunkBytes = 64 * 1024;

/**
 * Reads the packet lines of `path` (up to `size` bytes) into `marks`; returns the bytes of whole
 * lines, so that the caller can cut a torn last line. A missing file counts as empty. A last line
 * without its newline counts as a line (of its length + 1) only if that still fits `size`.
 *
 * With `stopAtZeros` (the current file at recovery), a line holding a zero byte ends the scan
 * there, as a torn tail does. The handler never writes a zero byte (JSON escapes it) and syncs
 * every line before acknowledging it, so the synced part of the file is whole lines without one;
 * zeros are sectors a power cut left unwritten in the unsynced tail, and a line after them that
 * survived whole was never acknowledged and lies past a gap (an earlier line of its target may be
 * the one that was lost). Learning it would answer its resend ok unwritten, and the earlier one's
 * resend would then land after it: out of order. Every chunk is read until two reads agree
 * (readStable), so a zero a flipped bit made on the way does not cost the acknowledged lines after it.
 */
export async function scanLines(files: Files, path: string, marks: SeqMarks, size = Infinity, stopAtZeros = false): Promise<number> {
  let fh;
  try {
    fh = await files.open(path, { readOnly: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  let goodBytes = 0;
  /** Counts one line ending at `lineEnd`; false once past `size` (the scan stops). */
  const take = (line: Buffer, lineEnd: number): boolean => {
    if (lineEnd > size) return false;
    goodBytes = lineEnd;
    try {
      const v = JSON.parse(line.toString('utf8')) as { agent?: unknown; seq?: unknown };
      if (typeof v.agent === 'string' && typeof v.seq === 'number') mark(marks, v.agent, v.seq);
    } catch {
      /* not ours: leave it */
    }
    return true;
  };
  try {
    const chunk = Buffer.allocUnsafe(scanChunkBytes);
    const check = Buffer.allocUnsafe(scanChunkBytes);
    let rest = Buffer.alloc(0); // bytes of a line begun in an earlier chunk
    for (let pos = 0; ; ) {
      const n = await readStable(fh, chunk, check, pos);
      if (n === 0) break;
      pos += n;
      const data = rest.length > 0 ? Buffer.concat([rest, chunk.subarray(0, n)]) : chunk.subarray(0, n);
      let start = 0;
      for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10, start)) {
        const line = data.subarray(start, nl);
        // Read stable (readStable), a zero here is on the disk: an unsynced tail from here on, which the caller cuts.
        if (stopAtZeros && line.includes(0)) return goodBytes;
        if (!take(line, goodBytes + nl - start + 1)) return goodBytes;
        start = nl + 1;
      }
      rest = Buffer.from(data.subarray(start)); // a copy: `chunk` is refilled by the next read
    }
    if (rest.length > 0) take(rest, goodBytes + rest.length + 1);
    return goodBytes;
  } finally {
    await fh.close();
  }
}

/** Reads of one chunk that must agree before recovery trusts it. */
const stableReadAttemptsMax = 6;

/**
 * Reads into `chunk` at `pos` until two reads in a row agree: a bit flipped on the way (a read
 * fault, not the disk) would otherwise turn an acknowledged line into a foreign one (not learnt:
 * its resend is written twice) or into another seq (learnt wrongly: that seq's packet would be
 * answered ok unwritten). Recovery reads the current file twice; it runs once, at start.
 */
async function readStable(fh: FileHandle, chunk: Buffer, check: Buffer, pos: number): Promise<number> {
  let n = await fh.read(chunk, 0, chunk.length, pos);
  for (let attempt = 1; attempt < stableReadAttemptsMax; attempt++) {
    const m = await fh.read(check, 0, check.length, pos);
    if (m === n && chunk.subarray(0, n).equals(check.subarray(0, m))) return n;
    check.copy(chunk, 0, 0, m);
    n = m;
  }
  throw new Error(`reading the output file at byte ${pos} gave different bytes on each of ${stableReadAttemptsMax} reads`);
}

/**
 * A whole small file, read until two reads agree: a bit flipped on the way in `.NAME.seqs` could
 * still parse, and mark seqs written that never were, which are then answered ok unwritten
 * (simulator seed 331164). Throws if no two reads agree.
 */
async function readAgreed(files: Files, p: string): Promise<Buffer> {
  let prev = await files.readFile(p);
  for (let attempt = 1; attempt < stableReadAttemptsMax; attempt++) {
    const next = await files.readFile(p);
    if (Buffer.compare(next, prev) === 0) return next;
    prev = next;
  }
  throw new Error(`${p} gave different bytes on each of ${stableReadAttemptsMax} reads`);
}

/**
 * The marks of everything before the current file: `.NAME.seqs` plus a scan of NAME.1 (at most
 * rotateBytes, and it covers a marks file older than the last rename); if the marks file is
 * missing or unreadable, a scan of every rotated file that exists.
 */
export async function readOlderMarks(files: Files, path: string, keep: number): Promise<SeqMarks> {
  const marks: SeqMarks = new Map();
  let saved: unknown;
  try {
    saved = JSON.parse((await readAgreed(files, seqsPath(path))).toString('utf8'));
  } catch {
    /* missing or damaged: rebuilt from the rotated files */
  }
  if (saved !== null && typeof saved === 'object') {
    for (const [agent, v] of Object.entries(saved)) markSaved(marks, agent, v);
    await scanLines(files, rotatedPath(path, 1), marks);
    return marks;
  }
  for (let n = 1; n <= keep; n++) await scanLines(files, rotatedPath(path, n), marks);
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
export async function rotate(files: Files, path: string, keep: number, marks: SeqMarks): Promise<void> {
  await writeFileAtomic(files, seqsPath(path), JSON.stringify(Object.fromEntries([...marks].map(([a, set]) => [a, set.toArray()]))));
  await ignoreMissing(files.unlink(rotatedPath(path, keep)));
  for (let n = keep - 1; n >= 1; n--) await ignoreMissing(files.rename(rotatedPath(path, n), rotatedPath(path, n + 1)));
  await files.rename(path, rotatedPath(path, 1));
}

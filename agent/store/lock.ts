import { join } from 'node:path';
import type { Files } from '../../common/files.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';

/**
 * One owner per store: an exclusive lock on `DIR/LOCK` through `files.lock`, which the operating
 * system releases when the process dies (SIGKILL, power cut), so a stale lock never blocks a start.
 * A second open, from another process or this one, fails with STORE_LOCKED. No in-process
 * bookkeeping here: the lock itself refuses a second holder, and a simulated crash that drops
 * its disk's locks must free the store for the next open.
 */
export async function lockDir(files: Files, dir: string): Promise<() => Promise<void>> {
  try {
    const lock = await files.lock(join(dir, 'LOCK'));
    return () => lock.release();
  } catch (err) {
    // The lock's message says who holds it (this process, or the PID its file names).
    if ((err as NodeJS.ErrnoException).code === 'ELOCKED') throw new FerryError(ErrorCode.STORE_LOCKED, `store ${dir} is in use: ${(err as Error).message}`, { cause: err });
    throw err;
  }
}

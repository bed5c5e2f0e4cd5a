import { join } from 'node:path';
import type { FileLock, Files } from '../common/files.js';
import { ErrorCode, FerryError } from '../protocol/errors.js';

/**
 * One gateway per dataDir: two would append to one dispatch log, each deciding alone what was
 * already dispatched, and dispatch packets twice. The lock (`DIR/LOCK` through `files.lock`) is
 * released by the operating system when the gateway dies, so a crash never blocks the next start.
 */
export async function lockDataDir(files: Files, dir: string): Promise<FileLock> {
  await files.mkdir(dir);
  try {
    return await files.lock(join(dir, 'LOCK'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
    throw new FerryError(ErrorCode.DATA_DIR_LOCKED, `gateway dataDir ${dir} is in use by another gateway: ${(err as Error).message}`, { cause: err });
  }
}

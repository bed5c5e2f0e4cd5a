import { open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, FerryError } from '../../protocol/errors.js';

/**
 * One process per store: a LOCK file holding the owner's PID. A lock left by a dead process
 * (SIGKILL, power cut) is taken over; a live owner makes the second open fail with STORE_LOCKED.
 */
const heldHere = new Set<string>();

export async function lockDir(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, 'LOCK');
  // The PID check cannot tell two opens in this same process apart: remember our own locks.
  if (heldHere.has(path)) throw new FerryError(ErrorCode.STORE_LOCKED, `store ${dir} is already open in this process`);
  const release = await takeLock(dir, path);
  heldHere.add(path);
  return async () => {
    heldHere.delete(path);
    await release();
  };
}

async function takeLock(dir: string, path: string): Promise<() => Promise<void>> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      return () => unlink(path).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new FerryError(ErrorCode.STORE_LOCKED, `store ${dir} is in use by process ${pid}`);
    }
    await unlink(path).catch(() => undefined);
  }
  throw new FerryError(ErrorCode.STORE_LOCKED, `store ${dir}: could not take its lock`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A service's data directory (the agent's `dataDir`, the gateway's `dataDir`) is not open to other
 * users, whatever the umask it was started with or made under: created 0700 when missing; an
 * existing one with any permission for others, or group write, is tightened at start (its mode
 * ANDed with 0750, a warning saying so) rather than left open or refused: what it holds (packets,
 * token hashes, the dispatch log) must not be readable by other users, and a group read bit an
 * administrator set on purpose is kept. Called from main.ts only (it is IO).
 */
import { chmod, mkdir, stat } from 'node:fs/promises';
import type { Log } from './log.js';

export const dataDirModeMax = 0o750;

/** Creates `dir` (0700) or tightens it to at most 0750; resolves with the mode it had if it changed it. */
export async function ensurePrivateDir(dir: string, log: Log): Promise<number | null> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const mode = (await stat(dir)).mode & 0o7777;
  if ((mode & ~dataDirModeMax) === 0) return null;
  const tightened = mode & dataDirModeMax;
  await chmod(dir, tightened);
  log.warn('data directory was open to other users: tightened', { dir, modeWas: `0${mode.toString(8)}`, mode: `0${tightened.toString(8)}` });
  return mode;
}

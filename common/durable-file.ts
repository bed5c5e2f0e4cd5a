import { dirname } from 'node:path';
import type { Files } from './files.js';

/**
 * Replaces `path` atomically: write a temporary file, fsync it, rename it over `path`, fsync the
 * directory. After a crash the file holds either the old or the new contents, never a mix.
 *
 * The temporary file is `PATH.tmp` unless `opts.tmpPath` names another: a file that more than one
 * process may write (the agent registry, changed by CLI commands) needs a name of its own per
 * writer (`uniqueTmpPath`), else two writers fill one temporary file and the rename installs the
 * mix. A file with a single owner keeps the fixed name, so a crash leaves at most one behind.
 */
export async function writeFileAtomic(files: Files, path: string, data: Uint8Array | string, opts: { tmpPath?: string } = {}): Promise<void> {
  const tmp = opts.tmpPath ?? `${path}.tmp`;
  // exclusive for a unique name: an existing file of that name is somebody else's, never ours to truncate.
  const fh = await files.open(tmp, opts.tmpPath === undefined ? { create: true, truncate: true } : { create: true, exclusive: true });
  try {
    await fh.writeAll(typeof data === 'string' ? Buffer.from(data) : data, 0);
    await fh.datasync();
  } catch (err) {
    await fh.close();
    await files.unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  await files.rename(tmp, path);
  await files.syncDir(dirname(path));
}

/** `PATH.PID.RANDOM.tmp`: a temporary name no other writer of `path` uses (`random`: a few random bytes). */
export function uniqueTmpPath(path: string, random: Uint8Array, pid: number): string {
  return `${path}.${pid}.${Buffer.from(random).toString('hex')}.tmp`;
}

/** Whether `name` (a name in the file's directory) is a temporary file `writeFileAtomic` made for `base`. */
export function isTmpNameOf(base: string, name: string): boolean {
  return name === `${base}.tmp` || (name.startsWith(`${base}.`) && /^\.\d+\.[0-9a-f]+\.tmp$/.test(name.slice(base.length)));
}

/**
 * Creates `dir` and its parents, and makes their entries durable: fsyncs `dir` and every directory
 * above it, since a power cut may otherwise drop a directory created just now, with every file in
 * it, however well those files were synced. A few fsyncs, once, at open.
 */
export async function mkdirDurable(files: Files, dir: string): Promise<void> {
  await files.mkdir(dir);
  await syncDirChain(files, dir);
}

/** fsyncs `dir` and every directory above it (see mkdirDurable). */
export async function syncDirChain(files: Files, dir: string): Promise<void> {
  for (let d = dir; ; d = dirname(d)) {
    await files.syncDir(d);
    if (dirname(d) === d) break;
  }
}

import { dirname } from 'node:path';
import type { Files } from './files.js';

/**
 * Replaces `path` atomically: write a temporary file, fsync it, rename it over `path`, fsync the
 * directory. After a crash the file holds either the old or the new contents, never a mix.
 */
export async function writeFileAtomic(files: Files, path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await files.open(tmp, { create: true, truncate: true });
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

/**
 * Creates `dir` and its parents, and makes their entries durable: fsyncs `dir` and every directory
 * above it, since a power cut may otherwise drop a directory created just now, with every file in
 * it, however well those files were synced. A few fsyncs, once, at open.
 */
export async function mkdirDurable(files: Files, dir: string): Promise<void> {
  await files.mkdir(dir);
  for (let d = dir; ; d = dirname(d)) {
    await files.syncDir(d);
    if (dirname(d) === d) break;
  }
}

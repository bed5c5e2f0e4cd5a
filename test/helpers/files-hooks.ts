/**
 * A `Files` (common/files.ts) with hooks, for tests that inject one precise fault (an open that
 * fails, a write held then failed, a bit flipped on one read) where SimDisk's random faults would
 * not hit the spot. Everything not hooked goes to `files` as it is.
 */
import type { FileHandle, Files, OpenOptions } from '../../common/files.js';

export interface FileHooks {
  /** before each open; throw to fail it */
  open?(path: string, opts: OpenOptions | undefined): void;
  /** replaces methods of each opened handle; `fh` is the real one */
  handle?(fh: FileHandle, path: string): Partial<FileHandle>;
}

export function hookFiles(files: Files, hooks: FileHooks): Files {
  return {
    async open(path, opts) {
      hooks.open?.(path, opts);
      const fh = await files.open(path, opts);
      const own: FileHandle = {
        write: (b, p) => fh.write(b, p), writeAll: (b, p) => fh.writeAll(b, p), read: (...a) => fh.read(...a),
        datasync: () => fh.datasync(), truncate: (n) => fh.truncate(n), size: () => fh.size(), close: () => fh.close(),
      };
      return { ...own, ...hooks.handle?.(fh, path) };
    },
    readFile: (p) => files.readFile(p), rename: (a, b) => files.rename(a, b), unlink: (p) => files.unlink(p),
    mkdir: (p) => files.mkdir(p), readdir: (p) => files.readdir(p), syncDir: (p) => files.syncDir(p), lock: (p) => files.lock(p),
  };
}

export const eio = (): Error => Object.assign(new Error('EIO (injected)'), { code: 'EIO' });

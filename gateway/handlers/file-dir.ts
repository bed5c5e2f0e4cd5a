/**
 * The file handler's output directory. A user names a file; its own directory is made when
 * missing (0750), but nothing above it: a typo in the path (`/var/lib/ferry-gatway/…`) or a path
 * into a file must stop the start with a message naming the path, not quietly create a tree
 * somewhere or exit with a bare ENOTDIR.
 */
import { dirname } from 'node:path';
import type { Files } from '../../common/files.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';

const outputDirMode = 0o750;

type Probe = 'dir' | 'ENOENT' | 'ENOTDIR';

/** Whether `dir` is a readable directory; other errors (EACCES, EIO) are thrown as CONFIG_INVALID naming `path`. */
async function probe(files: Files, dir: string, path: string): Promise<Probe> {
  try {
    await files.readdir(dir);
    return 'dir';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return code;
    throw new FerryError(ErrorCode.CONFIG_INVALID, `file handler ${path}: cannot read directory ${dir} (${code ?? (err as Error).message})`, { cause: err });
  }
}

/**
 * Makes sure the directory of `path` exists: as it is, or made (0750) when the directory above it
 * exists. Otherwise CONFIG_INVALID naming the path, the directory at fault and the errno.
 */
export async function prepareOutputDir(files: Files, path: string): Promise<void> {
  const dir = dirname(path);
  const state = await probe(files, dir, path);
  if (state === 'dir') return;
  // Find the deepest ancestor that is a directory; `below` is the first one under it that is not.
  let below = dir;
  let above = dirname(dir);
  let aboveState = await probe(files, above, path);
  while (aboveState !== 'dir' && dirname(above) !== above) {
    below = above;
    above = dirname(above);
    aboveState = await probe(files, above, path);
  }
  const belowState = below === dir ? state : await probe(files, below, path);
  if (belowState === 'ENOTDIR') throw new FerryError(ErrorCode.CONFIG_INVALID, `file handler ${path}: ${below} is not a directory (ENOTDIR)`);
  if (below !== dir) {
    throw new FerryError(ErrorCode.CONFIG_INVALID, `file handler ${path}: ${below} does not exist; the file handler makes only the file's own directory (${dir}), not the ones above it: create ${below} or choose another path (ENOENT)`);
  }
  await files.mkdir(dir, outputDirMode);
}

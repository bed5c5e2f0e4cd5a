/**
 * `Files` over node:fs: the only place the agent's and the gateway's durable files touch the
 * operating system (see common/files.ts for the contract).
 *
 * `write` is one `FileHandle.write`, i.e. one pwrite(2)/write(2), and resolves with its count
 * (possibly short). `position: null` is realised by the kernel on a handle opened with `append`
 * (O_APPEND, one write call); on any other handle it is the file's size (fstat) as the position,
 * which is the end of the file as long as this process is its only writer.
 *
 * What it creates is private unless the caller asks otherwise (files 0600, directories 0700), so
 * packets on disk do not depend on the umask the service was started with.
 */
import { constants as c } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, unlink, type FileHandle as NodeFileHandle } from 'node:fs/promises';
import { osLock } from './os-lock.js';
import { writeAllWith, type FileHandle, type Files, type OpenOptions } from './files.js';

export const fileModeDefault = 0o600;
export const dirModeDefault = 0o700;

function flagsOf(o: OpenOptions): number {
  return (
    (o.readOnly ? c.O_RDONLY : c.O_RDWR) |
    (o.create ? c.O_CREAT : 0) |
    (o.create && o.exclusive ? c.O_EXCL : 0) |
    (o.truncate ? c.O_TRUNC : 0) |
    (o.dsync ? c.O_DSYNC : 0) |
    (o.append ? c.O_APPEND : 0)
  );
}

class RealFileHandle implements FileHandle {
  constructor(private readonly fh: NodeFileHandle, private readonly append: boolean) {}

  async write(buf: Uint8Array, position: number | null): Promise<number> {
    // With O_APPEND the kernel puts a null-position write at the end; otherwise the size is the end.
    const at = position === null && !this.append ? await this.size() : position;
    const { bytesWritten } = await this.fh.write(buf, 0, buf.length, at);
    return bytesWritten;
  }

  writeAll(buf: Uint8Array, position: number | null): Promise<void> {
    return writeAllWith((b, p) => this.write(b, p), buf, position);
  }

  async read(buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const { bytesRead } = await this.fh.read(buf, offset, length, position);
    return bytesRead;
  }

  datasync(): Promise<void> {
    return this.fh.datasync();
  }

  truncate(bytes: number): Promise<void> {
    return this.fh.truncate(bytes);
  }

  async size(): Promise<number> {
    return (await this.fh.stat()).size;
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

export const realFiles: Files = {
  async open(path, opts = {}) {
    return new RealFileHandle(await open(path, flagsOf(opts), opts.mode ?? fileModeDefault), opts.append === true);
  },
  readFile: (path) => readFile(path),
  rename: (from, to) => rename(from, to),
  unlink: (path) => unlink(path),
  async mkdir(path, mode) {
    await mkdir(path, { recursive: true, mode: mode ?? dirModeDefault });
  },
  async readdir(path) {
    return (await readdir(path)).sort();
  },
  /** fsync of the directory itself: what makes a new, renamed or deleted entry survive power loss. */
  async syncDir(path) {
    const fh = await open(path, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
  lock: (path) => osLock(path),
};

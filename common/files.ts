/**
 * Durable files as a seam: every file the agent and the gateway write (the store, the dispatch
 * log, dead letters, the file handler, locks) goes through `Files`, so a simulation can run the
 * same code over an in-memory disk that fills up, tears writes, fails with EIO and loses what was
 * not synced in a power cut. Two implementations side by side, one contract suite
 * (test/common/files-contract.ts) run against both:
 * - `realFiles` (common/real-files.ts) over node:fs;
 * - `SimDisk` (test/sim/sim-disk.ts), in memory, with a fault model.
 *
 * Contract:
 * - Failures reject with an Error whose `code` is the errno name node:fs would give (`ENOENT`,
 *   `EEXIST`, `ENOSPC`, `EIO`, `EBADF` after close, `ELOCKED` from `lock`).
 * - `FileHandle.write` is one pwrite(2): it may write fewer bytes than asked (a disk that fills
 *   mid-write, a file size limit) and resolves with the count. `writeAll` is whole or fails: it
 *   loops over `write` and rejects (ENOSPC when a write made no progress) if the bytes cannot all
 *   be written; bytes already written by a failed `writeAll` may remain, so the caller cuts the
 *   file back (`truncate`) to its last whole record.
 * - `position: null` appends at the end of the file (O_APPEND semantics). On a handle opened with
 *   `append`, every write goes to the end whatever its `position` (as Linux does with O_APPEND).
 * - Data is durable only after `datasync` (or a write on a handle opened with `dsync`, which is
 *   durable when it resolves); a new or renamed directory entry is durable only after `syncDir`
 *   of its directory. A power cut may lose or tear (at sector granularity) anything else.
 * - `lock(path)` takes an exclusive lock that the operating system releases when the process
 *   dies (never a PID file); a second `lock` of the same path, from this or another process,
 *   rejects with `ELOCKED` until `release` is called or the holder dies.
 */
export interface OpenOptions {
  /** create the file if it does not exist */
  create?: boolean;
  /** with create: fail with EEXIST if it exists */
  exclusive?: boolean;
  /** cut the file to 0 bytes at open */
  truncate?: boolean;
  /** writes are durable when they resolve (O_DSYNC) */
  dsync?: boolean;
  /** open for reading only */
  readOnly?: boolean;
  /** every write goes to the end of the file, whatever its position (O_APPEND) */
  append?: boolean;
  /**
   * permission bits of a file this open creates (default 0o600: only the owner); the umask may
   * only narrow it. An existing file keeps its mode. A simulated disk may ignore it.
   */
  mode?: number;
}

export interface FileHandle {
  /** One pwrite: resolves with the bytes written, possibly fewer than `buf.length`. `position` null appends. */
  write(buf: Uint8Array, position: number | null): Promise<number>;
  /** Writes all of `buf` or rejects; see the contract above for what a failure leaves behind. */
  writeAll(buf: Uint8Array, position: number | null): Promise<void>;
  /** Reads up to `length` bytes at `position` into `buf` at `offset`; resolves with the count (0 at the end). */
  read(buf: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  datasync(): Promise<void>;
  truncate(bytes: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

export interface FileLock {
  release(): Promise<void>;
}

export interface Files {
  open(path: string, opts?: OpenOptions): Promise<FileHandle>;
  /** The whole file; ENOENT if it does not exist. */
  readFile(path: string): Promise<Buffer>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /**
   * Creates the directory and its parents; no error if it exists. Those it creates get `mode`
   * (default 0o700: only the owner), narrowed by the umask; an existing one keeps its mode.
   */
  mkdir(path: string, mode?: number): Promise<void>;
  /** Names in the directory (not paths), sorted. */
  readdir(path: string): Promise<string[]>;
  /** Makes the directory's entries (new files, renames, unlinks) durable. */
  syncDir(path: string): Promise<void>;
  lock(path: string): Promise<FileLock>;
}

/** The loop behind `writeAll`, shared by every implementation: pwrite until done, fail when no progress. */
export async function writeAllWith(write: (buf: Uint8Array, position: number | null) => Promise<number>, buf: Uint8Array, position: number | null): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const n = await write(buf.subarray(off), position === null ? null : position + off);
    if (n <= 0) throw Object.assign(new Error(`short write: ${off} of ${buf.length} bytes written, then no progress`), { code: 'ENOSPC' });
    off += n;
  }
}

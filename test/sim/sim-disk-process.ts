/**
 * One simulated process's view of a SimDisk (test/sim/sim-disk.ts, which describes the model):
 * `Files` and its file handles, with the disk's faults applied.
 */
import { writeAllWith, type FileHandle, type FileLock, type Files, type OpenOptions } from '../../common/files.js';
import type { SimDisk } from './sim-disk.js';
import { syncData, syncRange } from './sim-disk-power.js';
import { DirNode, FileNode, existing, fsError, parentOf, partsOf, resized } from './sim-disk-tree.js';

type Mode = Required<Pick<OpenOptions, 'readOnly' | 'dsync'>> & { append: boolean };

export class SimProcess implements Files {
  alive = true;

  constructor(readonly disk: SimDisk, readonly name: string) {}

  /**
   * Runs `body` as one operation: its effect in one scheduled step, its settling in the next. A
   * dead process's operations never settle, and take no effect if it died before their turn.
   */
  run<T>(body: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (!this.alive) return;
      this.disk.schedule(() => {
        if (!this.alive) return;
        let settle: () => void;
        try {
          const value = body();
          settle = () => resolve(value);
        } catch (err) {
          settle = () => reject(err);
        }
        this.disk.schedule(() => {
          if (this.alive) settle();
        });
      });
    });
  }

  open(path: string, opts: OpenOptions & { append?: boolean } = {}): Promise<FileHandle> {
    return this.run(() => {
      if (this.disk.chance(this.disk.faults.openEioP)) {
        this.disk.counts.openEio++;
        throw fsError('EIO', 'open', path);
      }
      const { dir, name } = parentOf(this.disk.root, path, 'open');
      let node = dir.current.get(name);
      if (node !== undefined && opts.create && opts.exclusive) throw fsError('EEXIST', 'open', path);
      if (node?.kind === 'dir') throw fsError('EISDIR', 'open', path);
      if (node === undefined) {
        if (!opts.create) throw fsError('ENOENT', 'open', path);
        node = new FileNode();
        dir.current.set(name, node);
      }
      if (opts.truncate && !opts.readOnly) node.current = new Uint8Array(0);
      const handle = new SimHandle(this, node, { readOnly: opts.readOnly === true, dsync: opts.dsync === true, append: opts.append === true });
      this.disk.handles.add(handle);
      return handle;
    });
  }

  readFile(path: string): Promise<Buffer> {
    return this.run(() => {
      const node = existing(this.disk.root, path, 'open');
      if (node.kind === 'dir') throw fsError('EISDIR', 'read');
      return Buffer.from(readFaults(this.disk, node.current.slice(), 'read'));
    });
  }

  rename(from: string, to: string): Promise<void> {
    return this.run(() => {
      const src = parentOf(this.disk.root, from, 'rename');
      const node = src.dir.current.get(src.name);
      if (node === undefined) throw fsError('ENOENT', 'rename', from);
      const dst = parentOf(this.disk.root, to, 'rename');
      const over = dst.dir.current.get(dst.name);
      if (over === node) return;
      if (over !== undefined) {
        if (node.kind === 'file' && over.kind === 'dir') throw fsError('EISDIR', 'rename', to);
        if (node.kind === 'dir' && over.kind === 'file') throw fsError('ENOTDIR', 'rename', to);
        if (over.kind === 'dir' && over.current.size > 0) throw fsError('ENOTEMPTY', 'rename', to);
      }
      if (node.kind === 'dir' && contains(node, dst.dir)) throw fsError('EINVAL', 'rename', to);
      dst.dir.current.set(dst.name, node);
      src.dir.current.delete(src.name);
    });
  }

  unlink(path: string): Promise<void> {
    return this.run(() => {
      const { dir, name } = parentOf(this.disk.root, path, 'unlink');
      const node = dir.current.get(name);
      if (node === undefined) throw fsError('ENOENT', 'unlink', path);
      if (node.kind === 'dir') throw fsError('EISDIR', 'unlink', path);
      dir.current.delete(name);
    });
  }

  mkdir(path: string): Promise<void> {
    return this.run(() => {
      let dir = this.disk.root;
      const parts = partsOf(path);
      parts.forEach((part, i) => {
        const next = dir.current.get(part);
        if (next?.kind === 'file') throw fsError(i === parts.length - 1 ? 'EEXIST' : 'ENOTDIR', 'mkdir', path);
        if (next === undefined) {
          const made = new DirNode();
          dir.current.set(part, made);
          dir = made;
        } else dir = next;
      });
    });
  }

  readdir(path: string): Promise<string[]> {
    return this.run(() => {
      const node = existing(this.disk.root, path, 'scandir');
      if (node.kind !== 'dir') throw fsError('ENOTDIR', 'scandir', path);
      return [...node.current.keys()].sort();
    });
  }

  syncDir(path: string): Promise<void> {
    return this.run(() => {
      const node = existing(this.disk.root, path, 'open');
      if (node.kind !== 'dir') throw fsError('ENOTDIR', 'fsync', path);
      if (this.disk.chance(this.disk.faults.syncEioP)) {
        this.disk.counts.syncEio++;
        throw fsError('EIO', 'fsync', path);
      }
      node.durable = new Map(node.current);
    });
  }

  /**
   * As osLock (common/os-lock.ts): the lock is the directory node's and the name's (a wiped and
   * recreated directory is another lock); the file at `path` is written with the holder's name
   * for people only, and removed by `release` (not by death).
   */
  lock(path: string): Promise<FileLock> {
    return this.run(() => {
      const { dir, name } = parentOf(this.disk.root, path, 'open');
      let held = this.disk.locks.get(dir);
      if (held === undefined) this.disk.locks.set(dir, (held = new Map()));
      if (held.has(name)) throw fsError('ELOCKED', 'lock', path);
      held.set(name, this);
      const node = dir.current.get(name);
      if (node === undefined || node.kind === 'file') {
        const file = node ?? new FileNode();
        file.current = new TextEncoder().encode(`${this.name}\n`);
        dir.current.set(name, file);
      }
      let released = false;
      return {
        release: () =>
          this.run(() => {
            if (released) return;
            released = true;
            if (dir.current.get(name)?.kind === 'file') dir.current.delete(name);
            if (held.get(name) === this) held.delete(name);
          }),
      };
    });
  }
}

export class SimHandle implements FileHandle {
  private closed = false;

  constructor(readonly proc: SimProcess, readonly node: FileNode, private readonly mode: Mode) {}

  write(buf: Uint8Array, position: number | null): Promise<number> {
    return this.proc.run(() => {
      this.check('write');
      if (this.mode.readOnly) throw fsError('EBADF', 'write');
      if (buf.length === 0) return 0;
      const disk = this.proc.disk;
      const size = this.node.current.length;
      const at = position === null || this.mode.append ? size : position;
      let count = Math.min(buf.length, this.room(at));
      if (count <= 0) {
        disk.counts.enospc++;
        throw fsError('ENOSPC', 'write');
      }
      if (count > 1 && disk.chance(disk.faults.shortWriteP)) {
        disk.counts.shortWrites++;
        count = 1 + Math.floor(disk.rng() * (count - 1));
      }
      if (count > 0 && disk.chance(disk.faults.writeEioP)) {
        disk.counts.writeEio++;
        this.put(buf.subarray(0, Math.floor(disk.rng() * count)), at);
        throw fsError('EIO', 'write');
      }
      this.put(buf.subarray(0, count), at);
      if (this.mode.dsync) syncRange(this.node, at, count);
      return count;
    });
  }

  writeAll(buf: Uint8Array, position: number | null): Promise<void> {
    return writeAllWith((b, p) => this.write(b, p), buf, position);
  }

  read(buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.proc.run(() => {
      this.check('read');
      if (offset < 0 || length < 0 || offset + length > buf.length) throw new RangeError(`read: offset ${offset} + length ${length} is outside a buffer of ${buf.length} bytes`);
      const bytes = this.node.current.subarray(position, Math.min(position + length, this.node.current.length));
      buf.set(readFaults(this.proc.disk, bytes.slice(), 'read'), offset);
      return bytes.length;
    });
  }

  datasync(): Promise<void> {
    return this.proc.run(() => {
      this.check('fdatasync');
      const disk = this.proc.disk;
      if (disk.chance(disk.faults.syncEioP)) {
        disk.counts.syncEio++;
        throw fsError('EIO', 'fdatasync');
      }
      syncData(this.node);
    });
  }

  truncate(bytes: number): Promise<void> {
    return this.proc.run(() => {
      this.check('ftruncate');
      if (this.mode.readOnly || bytes < 0) throw fsError('EINVAL', 'ftruncate');
      this.node.current = resized(this.node.current, bytes);
    });
  }

  size(): Promise<number> {
    return this.proc.run(() => {
      this.check('fstat');
      return this.node.current.length;
    });
  }

  close(): Promise<void> {
    return this.proc.run(() => {
      this.closed = true;
      this.proc.disk.handles.delete(this);
    });
  }

  private check(syscall: string): void {
    if (this.closed) throw fsError('EBADF', syscall);
  }

  /** How many bytes a write at `at` may put before the budget is reached (Infinity without one). */
  private room(at: number): number {
    const budget = this.proc.disk.faults.bytesBudget;
    if (budget === null) return Infinity;
    const size = this.node.current.length;
    const end = size + Math.max(0, budget - this.proc.disk.usedBytes());
    return end - at;
  }

  private put(bytes: Uint8Array, at: number): void {
    if (bytes.length === 0) return;
    const end = at + bytes.length;
    if (end > this.node.current.length) this.node.current = resized(this.node.current, end);
    this.node.current.set(bytes, at);
  }
}

/** A read's EIO and bit flip faults; returns `bytes`, maybe with one bit flipped (a copy: the disk is not changed). */
function readFaults(disk: SimDisk, bytes: Uint8Array, syscall: string): Uint8Array {
  if (disk.chance(disk.faults.readEioP)) {
    disk.counts.readEio++;
    throw fsError('EIO', syscall);
  }
  if (bytes.length > 0 && disk.chance(disk.faults.bitFlipP)) {
    disk.counts.bitFlips++;
    const bit = Math.floor(disk.rng() * bytes.length * 8);
    bytes[bit >> 3]! ^= 1 << (bit & 7);
  }
  return bytes;
}

/** Whether `dir` is `node` or inside it. */
function contains(node: DirNode, dir: DirNode): boolean {
  if (node === dir) return true;
  for (const child of node.current.values()) if (child.kind === 'dir' && contains(child, dir)) return true;
  return false;
}

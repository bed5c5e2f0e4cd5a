/**
 * The in-memory tree behind SimDisk (test/sim/sim-disk.ts): inodes with a current and a durable
 * state, path lookup over either, and node:fs-shaped errors. No faults, no processes here.
 *
 * A file node holds its current bytes (what a read sees: the page cache) and its durable bytes
 * (what is on the medium). A directory node holds its current entries and its durable entries;
 * entries point at nodes, so a rename moves the node and a power cut that undoes the rename finds
 * the same node (with its own content rules) under its old name.
 */
import { posix } from 'node:path';

export type FsCode = 'ENOENT' | 'EEXIST' | 'ENOSPC' | 'EIO' | 'EBADF' | 'ELOCKED' | 'ENOTDIR' | 'EISDIR' | 'ENOTEMPTY' | 'EINVAL';

const messages: Record<FsCode, string> = {
  ENOENT: 'no such file or directory',
  EEXIST: 'file already exists',
  ENOSPC: 'no space left on device',
  EIO: 'i/o error',
  EBADF: 'bad file descriptor',
  ELOCKED: 'locked by another holder',
  ENOTDIR: 'not a directory',
  EISDIR: 'illegal operation on a directory',
  ENOTEMPTY: 'directory not empty',
  EINVAL: 'invalid argument',
};

/** An Error shaped like node:fs's: `ENOENT: no such file or directory, open '/a/b'` with `code`, `syscall`, `path`. */
export function fsError(code: FsCode, syscall: string, path?: string): Error & { code: FsCode } {
  const where = path === undefined ? '' : ` '${path}'`;
  return Object.assign(new Error(`${code}: ${messages[code]}, ${syscall}${where}`), { code, syscall, ...(path === undefined ? {} : { path }) });
}

export class FileNode {
  readonly kind = 'file';
  /** what reads see; may be ahead of `durable` */
  current: Uint8Array = new Uint8Array(0);
  /** what survives a power cut for sure */
  durable: Uint8Array = new Uint8Array(0);
}

export class DirNode {
  readonly kind = 'dir';
  readonly current = new Map<string, Node>();
  durable = new Map<string, Node>();
}

export type Node = FileNode | DirNode;
export type View = 'current' | 'durable';

/** `/a/b/../c` → `['a', 'c']`; relative paths are taken from `/`. */
export function partsOf(path: string): string[] {
  return posix.resolve('/', path).split('/').filter((p) => p !== '');
}

export function normalize(path: string): string {
  return posix.resolve('/', path);
}

/** The node at `path` in one view, or undefined (also when a component on the way is not a directory). */
export function lookup(root: DirNode, path: string, view: View = 'current'): Node | undefined {
  let node: Node = root;
  for (const part of partsOf(path)) {
    if (node.kind !== 'dir') return undefined;
    const next: Node | undefined = node[view].get(part);
    if (next === undefined) return undefined;
    node = next;
  }
  return node;
}

/** The parent directory of `path` (current view) and the last name; ENOENT/ENOTDIR as open(2) would give. */
export function parentOf(root: DirNode, path: string, syscall: string): { dir: DirNode; name: string } {
  const parts = partsOf(path);
  const name = parts.pop();
  if (name === undefined) throw fsError('EISDIR', syscall, path);
  let dir: DirNode = root;
  for (const part of parts) {
    const next = dir.current.get(part);
    if (next === undefined) throw fsError('ENOENT', syscall, path);
    if (next.kind !== 'dir') throw fsError('ENOTDIR', syscall, path);
    dir = next;
  }
  return { dir, name };
}

/** The node at `path` (current view), ENOENT/ENOTDIR if there is none. */
export function existing(root: DirNode, path: string, syscall: string): Node {
  const { dir, name } = partsOf(path).length === 0 ? { dir: undefined, name: '' } : parentOf(root, path, syscall);
  const node = dir === undefined ? root : dir.current.get(name);
  if (node === undefined) throw fsError('ENOENT', syscall, path);
  return node;
}

/** Every node reachable in one view, each once, in a fixed order (sorted names, depth first). */
export function* walk(root: DirNode, view: View, seen = new Set<Node>()): Generator<Node> {
  if (seen.has(root)) return;
  seen.add(root);
  yield root;
  for (const name of [...root[view].keys()].sort()) {
    const node = root[view].get(name)!;
    if (node.kind === 'dir') yield* walk(node, view, seen);
    else if (!seen.has(node)) {
      seen.add(node);
      yield node;
    }
  }
}

/** `bytes` cut or extended (with zeros) to `length`, as a new array. */
export function resized(bytes: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  out.set(length >= bytes.length ? bytes : bytes.subarray(0, length));
  return out;
}

/**
 * SimDisk: an in-memory disk shared by simulated processes, each seeing it through `Files`
 * (common/files.ts), with a fault model. Deterministic: all randomness comes from `rng`, and
 * every operation completes through the injected `schedule` so a simulator decides interleavings.
 *
 * Operations: each call is scheduled twice: once to take effect on the disk, once to settle its
 * promise. So a process can die after its write reached the page cache and before it learnt so.
 *
 * Durability model. A file has current bytes (what reads see) and durable bytes; a directory has
 * current entries and durable entries (pointing at the same file and directory nodes).
 * - `datasync` makes the file's current content and size durable; a write on a handle opened
 *   `dsync` makes its own bytes and the file's size durable (not other unsynced writes).
 * - `syncDir(dir)` makes the directory's current entries durable: creates, renames, unlinks and
 *   mkdirs in it. A rename between two directories is two entry changes: syncing only one may
 *   leave the file under both names after a power cut (a hard link), or under neither.
 * - `kill(name)`: the process dies. Its operations not yet settled never settle (its code stops
 *   at its next IO), later ones neither; its handles are dead and its locks released. What it
 *   wrote stays (the page cache survives a process).
 * - `powerCut()`: every process dies, every directory's entries revert to their durable state
 *   (unsynced creates vanish, unsynced renames and unlinks are undone), and each file still
 *   reachable gets what `afterPowerCut` (sim-disk-power.ts) gives: synced bytes survive; unsynced
 *   ones are lost, kept, or torn at sector granularity. Afterwards everything on disk is durable.
 * - `process(name)` gives the live process of that name, or a fresh one after a kill or cut.
 *
 * Fault model (`disk.faults`, changeable at any time, all off by default):
 * - `shortWriteP`: a write writes a random prefix (at least 1 byte) and resolves with its count.
 * - `bytesBudget`: the sum of the sizes of all files (linked, or unlinked but open) may not pass
 *   it. A write that would cross it writes up to it and returns the short count; a write that
 *   finds no room rejects ENOSPC. Truncate and unlink free space; overwrites need none. A
 *   truncate that extends a file is sparse: it never fails for space.
 * - `writeEioP`: the write rejects EIO after writing a random prefix of its bytes (possibly none).
 * - `syncEioP`: `datasync`/`syncDir` reject EIO and make nothing durable.
 * - `readEioP`: `read`/`readFile` reject EIO.
 * - `bitFlipP`: a read or readFile returns its bytes with one bit flipped (the disk is unchanged).
 * - `openEioP`: `open` rejects EIO.
 * Counts of what was injected are in `disk.counts`.
 *
 * Locks behave as osLock's (common/os-lock.ts): one per directory node and name, so a directory
 * that replaced a wiped one has its own; `lock` writes the holder's name into the file at `path`
 * (ignoring the budget: never read, only for people) and `release` removes it.
 */
import { afterPowerCut } from './sim-disk-power.js';
import { SimHandle, SimProcess } from './sim-disk-process.js';
import { DirNode, FileNode, lookup, partsOf, walk, type View } from './sim-disk-tree.js';

export interface SimFaults {
  shortWriteP: number;
  bytesBudget: number | null;
  writeEioP: number;
  syncEioP: number;
  readEioP: number;
  bitFlipP: number;
  openEioP: number;
}

export interface SimDiskCounts {
  shortWrites: number;
  enospc: number;
  writeEio: number;
  syncEio: number;
  readEio: number;
  openEio: number;
  bitFlips: number;
  kills: number;
  powerCuts: number;
}

export interface SimDiskOptions {
  rng: () => number;
  /** runs a step of an operation later; default setImmediate */
  schedule?: (fn: () => void) => void;
  faults?: Partial<SimFaults>;
  /** the unit a power cut tears at; default 512 */
  sectorBytes?: number;
}

export const noFaults: Readonly<SimFaults> = { shortWriteP: 0, bytesBudget: null, writeEioP: 0, syncEioP: 0, readEioP: 0, bitFlipP: 0, openEioP: 0 };

export class SimDisk {
  readonly faults: SimFaults;
  readonly counts: SimDiskCounts = { shortWrites: 0, enospc: 0, writeEio: 0, syncEio: 0, readEio: 0, openEio: 0, bitFlips: 0, kills: 0, powerCuts: 0 };
  readonly rng: () => number;
  readonly schedule: (fn: () => void) => void;
  readonly sectorBytes: number;
  readonly root = new DirNode();
  /** directory node → lock name in it → the live process holding that lock */
  readonly locks = new Map<DirNode, Map<string, SimProcess>>();
  /** open handles of live processes (an unlinked open file still takes space) */
  readonly handles = new Set<SimHandle>();
  private readonly procs = new Map<string, SimProcess>();

  private crash: { steps: number; crash: () => void } | null = null;

  constructor(opts: SimDiskOptions) {
    this.rng = opts.rng;
    const schedule = opts.schedule ?? ((fn: () => void) => setImmediate(fn));
    this.schedule = (fn) => schedule(() => this.step(fn));
    this.faults = { ...noFaults, ...opts.faults };
    this.sectorBytes = opts.sectorBytes ?? 512;
  }

  /**
   * Calls `crash` (a kill, a power cut) just before the `steps`-th operation step from now takes
   * effect, so the crash falls inside a write, a roll, a recovery. One crash is armed at a time.
   */
  crashBeforeStep(steps: number, crash: () => void): void {
    this.crash = { steps, crash };
  }

  /** No crash armed any more. */
  disarmCrash(): void {
    this.crash = null;
  }

  private step(fn: () => void): void {
    const c = this.crash;
    if (c && --c.steps <= 0) {
      this.crash = null;
      c.crash();
    }
    fn();
  }

  /** The live process called `name` (a fresh one if it never ran or died). */
  process(name: string): SimProcess {
    let p = this.procs.get(name);
    if (p === undefined) {
      p = new SimProcess(this, name);
      this.procs.set(name, p);
    }
    return p;
  }

  /** Whether a process of that name is running (it was asked for and has not died since). */
  isAlive(name: string): boolean {
    return this.procs.has(name);
  }

  kill(name: string): void {
    const p = this.procs.get(name);
    if (p === undefined) return;
    this.counts.kills++;
    this.die(p);
  }

  powerCut(): void {
    this.counts.powerCuts++;
    for (const p of [...this.procs.values()]) this.die(p);
    for (const node of walk(this.root, 'durable')) {
      if (node.kind === 'dir') {
        node.current.clear();
        for (const [name, child] of node.durable) node.current.set(name, child);
      } else {
        node.current = afterPowerCut(node.durable, node.current, this.rng, this.sectorBytes);
        node.durable = node.current.slice();
      }
    }
  }

  /** True with probability `p`; draws from the rng only when `p > 0`. */
  chance(p: number): boolean {
    return p > 0 && this.rng() < p;
  }

  /** The file's durable bytes reached through durable entries: what a power cut now could not lose. */
  readDurable(path: string): Buffer | undefined {
    const node = lookup(this.root, path, 'durable');
    return node?.kind === 'file' ? Buffer.from(node.durable) : undefined;
  }

  /** The file's current bytes (what a process would read), without faults. */
  readCurrent(path: string): Buffer | undefined {
    const node = lookup(this.root, path, 'current');
    return node?.kind === 'file' ? Buffer.from(node.current) : undefined;
  }

  /** The summed current size of the files in `dir` whose name passes `keep` (no copy of their bytes, one lookup). */
  sizeOfFiles(dir: string, keep: (name: string) => boolean): number {
    const node = lookup(this.root, dir, 'current');
    let sum = 0;
    if (node?.kind === 'dir') for (const [name, child] of node.current) if (child.kind === 'file' && keep(name)) sum += child.current.length;
    return sum;
  }

  /** Sorted names in a directory (current entries, or durable ones); undefined if it is not a directory. */
  list(dir: string, view: View = 'current'): string[] | undefined {
    const node = lookup(this.root, dir, view);
    return node?.kind === 'dir' ? [...node[view].keys()].sort() : undefined;
  }

  /** Bytes taken: the sizes of linked files and of unlinked ones still open. */
  usedBytes(): number {
    const files = new Set<FileNode>();
    for (const node of walk(this.root, 'current')) if (node.kind === 'file') files.add(node);
    for (const h of this.handles) files.add(h.node);
    let sum = 0;
    for (const f of files) sum += f.current.length;
    return sum;
  }

  /** Removes a directory tree for good (current and durable), as a user deleting a store would. Open handles keep working. */
  wipe(dir: string): void {
    const parts = partsOf(dir);
    const name = parts.pop();
    if (name === undefined) {
      this.root.current.clear();
      this.root.durable.clear();
      return;
    }
    const parent = lookup(this.root, `/${parts.join('/')}`, 'current');
    if (parent?.kind === 'dir') parent.current.delete(name);
    const durableParent = lookup(this.root, `/${parts.join('/')}`, 'durable');
    if (durableParent?.kind === 'dir') durableParent.durable.delete(name);
  }

  /** Makes everything durable (for setting up a scenario). */
  syncAll(): void {
    for (const node of walk(this.root, 'current')) {
      if (node.kind === 'dir') node.durable = new Map(node.current);
      else node.durable = node.current.slice();
    }
  }

  private die(p: SimProcess): void {
    p.alive = false;
    this.procs.delete(p.name);
    for (const h of [...this.handles]) if (h.proc === p) this.handles.delete(h);
    for (const held of this.locks.values()) for (const [name, owner] of [...held]) if (owner === p) held.delete(name);
  }
}

/**
 * A registry kept in one JSON file in the gateway's dataDir, changed by CLI commands while a
 * running gateway reads it: the agent registry (`agents.json`, gateway/agents.ts) and the
 * application registry (`apps.json`, gateway/apps.ts) are both one of these.
 *
 * Changes hold the file's lock (common/os-lock.ts) from re-reading the file to the rename of its
 * replacement, so two commands run at once apply one after the other: neither can write back a
 * copy read before the other's change (which once undid revocations). Each change writes a
 * temporary file of its own (a unique name: two writers of one temporary file installed a mix),
 * fsyncs it, renames it over the file and fsyncs the directory; temporary files a killed command
 * left behind are removed under the lock. The running gateway only reads; the rename is atomic,
 * so it sees the old file or the new one. It polls the file (fs.watchFile: one stat per interval,
 * which also sees a rename over the path) and reloads it on a change, without a restart.
 *
 * Tokens are 32 random bytes, shown once and stored only as `sha256:<hex>`. A fast hash is the
 * right one here: a token carries 256 bits of randomness, so there is nothing for a slow hash to
 * protect against guessing, while scrypt or argon2 would cost tens of milliseconds of CPU per
 * HELLO or API request, which a reconnect storm turns into a self-inflicted outage.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { isTmpNameOf, uniqueTmpPath, writeFileAtomic } from '../common/durable-file.js';
import { osLockWaiting } from '../common/os-lock.js';
import { realFiles } from '../common/real-files.js';
import type { Log } from '../common/log.js';
import { ErrorCode, FerryError } from '../protocol/errors.js';

export const tokenHashPattern = /^sha256:[0-9a-f]{64}$/;

/** What every registry entry holds besides its name: the token's hash, and whether and when it was added and revoked. */
export interface RegistryEntryBase {
  tokenHash?: string;
  revoked: boolean;
  addedAt: number;
  revokedAt?: number;
}

/**
 * Parses a registry file's text `{"version": 1, KEY: [...]}` into entries by name. Each raw entry
 * is checked for the common fields here and handed, with its name, to `entry` for its own; anything
 * unexpected is CONFIG_INVALID naming the file, the entry and `what` to do about it.
 */
export function parseRegistry<E extends RegistryEntryBase>(
  text: string, path: string,
  o: { key: string; nameKey: string; nameRule: string; namePattern: RegExp; damaged: string; entry(base: RegistryEntryBase, name: string, raw: Record<string, unknown>, bad: (what: string) => never): E },
): Map<string, E> {
  const bad = (what: string): never => {
    throw new FerryError(ErrorCode.CONFIG_INVALID, `${path}: ${what} (${o.damaged}; a running gateway keeps the copy it last loaded)`);
  };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return bad(`not valid JSON: ${(err as Error).message}`);
  }
  const doc = value as Record<string, unknown> | null;
  if (typeof doc !== 'object' || doc === null || doc.version !== registryFileVersion || !Array.isArray(doc[o.key])) {
    return bad(`expected {"version": ${registryFileVersion}, "${o.key}": [...]}`);
  }
  const out = new Map<string, E>();
  for (const [i, raw] of (doc[o.key] as unknown[]).entries()) {
    const at = `${o.key}[${i}]`;
    const e = raw as Record<string, unknown>;
    if (typeof e !== 'object' || e === null) bad(`${at}: not an object`);
    const name = e[o.nameKey];
    if (typeof name !== 'string' || !o.namePattern.test(name)) bad(`${at}.${o.nameKey}: ${o.nameRule} expected`);
    if (e.tokenHash !== undefined && (typeof e.tokenHash !== 'string' || !tokenHashPattern.test(e.tokenHash))) bad(`${at}.tokenHash: sha256:<64 hex digits> expected`);
    if (typeof e.revoked !== 'boolean') bad(`${at}.revoked: true or false expected`);
    if (typeof e.addedAt !== 'number') bad(`${at}.addedAt: a time in ms expected`);
    if (e.revokedAt !== undefined && typeof e.revokedAt !== 'number') bad(`${at}.revokedAt: a time in ms expected`);
    if (out.has(name as string)) bad(`${at}.${o.nameKey}: ${name as string} is listed twice`);
    const base: RegistryEntryBase = { revoked: e.revoked as boolean, addedAt: e.addedAt as number };
    if (e.tokenHash !== undefined) base.tokenHash = e.tokenHash as string;
    if (e.revokedAt !== undefined) base.revokedAt = e.revokedAt as number;
    out.set(name as string, o.entry(base, name as string, e, (what) => bad(`${at}.${what}`)));
  }
  return out;
}

/** The version both registry files carry. */
export const registryFileVersion = 1;

export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

export function hashToken(token: string): string {
  return `sha256:${createHash('sha256').update(token, 'utf8').digest('hex')}`;
}

export interface RegistryFileOptions<E> {
  dataDir: string;
  /** e.g. `agents.json` */
  fileName: string;
  /** e.g. `agents.lock` (distinct from the data dir's `LOCK`, which a running gateway holds) */
  lockName: string;
  /** for messages: `agent registry` */
  what: string;
  /** the file's text → its entries by key; anything unexpected is CONFIG_INVALID naming the file */
  parse(text: string, path: string): Map<string, E>;
  /** the entries → the document written (JSON) */
  serialize(entries: ReadonlyMap<string, E>): unknown;
  /** called after each reload that read the file, with what it held before and now */
  onReloaded?(before: ReadonlyMap<string, E>, after: ReadonlyMap<string, E>): void;
  log?: Log;
  /** poll the file for changes made by the CLI; 0 turns polling off (default 500) */
  watchIntervalMs?: number;
  /** how long a change waits for another process's change to finish before DATA_DIR_LOCKED (default 10 s) */
  lockWaitMsMax?: number;
}

/**
 * One registry file. `entries` is what was last loaded; `change` takes the lock, reads the file
 * afresh, lets `fn` change the entries and replaces the file, then reloads.
 */
export class RegistryFile<E> {
  private current = new Map<string, E>();
  private watcher: ((cur: Stats, prev: Stats) => void) | null = null;
  private reloading: Promise<void> = Promise.resolve();
  readonly path: string;

  private constructor(private readonly o: RegistryFileOptions<E>) {
    this.path = join(o.dataDir, o.fileName);
  }

  /** Loads the file (none yet: empty); a damaged file is CONFIG_INVALID. */
  static async open<E>(o: RegistryFileOptions<E>): Promise<RegistryFile<E>> {
    const r = new RegistryFile(o);
    r.current = await r.read();
    const intervalMs = o.watchIntervalMs ?? 500;
    if (intervalMs > 0) {
      r.watcher = (cur, prev) => {
        if (cur.mtimeMs !== prev.mtimeMs || cur.ino !== prev.ino || cur.size !== prev.size) void r.reload();
      };
      watchFile(r.path, { interval: intervalMs, persistent: false }, r.watcher);
    }
    return r;
  }

  get entries(): ReadonlyMap<string, E> {
    return this.current;
  }

  /**
   * Re-reads the file. A damaged file is logged and the registry keeps what it had (a half-edited
   * file must not open the door or crash the gateway).
   */
  reload(): Promise<void> {
    this.reloading = this.reloading.then(async () => {
      let next: Map<string, E>;
      try {
        next = await this.read();
      } catch (err) {
        this.o.log?.error(`${this.o.fileName.replace(/\.json$/, '')}: registry not reloaded; keeping the previous one`, { file: this.path, err });
        return;
      }
      const before = this.current;
      this.current = next;
      this.o.onReloaded?.(before, next);
    });
    return this.reloading;
  }

  /**
   * Applies `fn` to the entries read afresh under the lock, writes them, reloads, and returns
   * what `fn` returned. `fn` throws to refuse the change (nothing is written).
   */
  async change<T>(fn: (entries: Map<string, E>) => T): Promise<T> {
    const dir = dirname(this.path);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const lock = await this.lock(dir);
    let result: T;
    try {
      // Read under the lock: a copy read before another command's change would undo it when written back.
      const entries = await this.read();
      result = fn(entries);
      await this.removeLeftovers(dir);
      await writeFileAtomic(realFiles, this.path, `${JSON.stringify(this.o.serialize(entries), null, 2)}\n`, { tmpPath: uniqueTmpPath(this.path, randomBytes(6), process.pid) });
    } finally {
      await lock.release();
    }
    await this.reload();
    return result;
  }

  close(): void {
    if (this.watcher) unwatchFile(this.path, this.watcher);
    this.watcher = null;
  }

  private async read(): Promise<Map<string, E>> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw new FerryError(ErrorCode.CONFIG_INVALID, `${this.path}: cannot read the ${this.o.what} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
    }
    return this.o.parse(text, this.path);
  }

  private async lock(dir: string): Promise<{ release(): Promise<void> }> {
    const waitMsMax = this.o.lockWaitMsMax ?? 10_000;
    try {
      return await osLockWaiting(join(dir, this.o.lockName), { waitMsMax });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
      throw new FerryError(ErrorCode.DATA_DIR_LOCKED, `the ${this.o.what} ${this.path} is being changed by another command, still after ${waitMsMax} ms (${(err as Error).message}); try again once it has finished, or stop it if it hangs`, { cause: err });
    }
  }

  /**
   * Removes temporary files a change left when its process died between writing and renaming.
   * Called under the lock, so none of them belongs to a change still running.
   */
  private async removeLeftovers(dir: string): Promise<void> {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      if (isTmpNameOf(this.o.fileName, name)) await unlink(join(dir, name)).catch(() => undefined);
    }
  }
}

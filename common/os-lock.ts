/**
 * An exclusive lock that the kernel releases when its holder dies, for one directory owner at a
 * time (the agent's store, the gateway's dataDir). A PID file cannot be that: after a reboot or a
 * crash its PID may belong to another live process (early-boot PIDs are reused), and the owner
 * then refuses to start.
 *
 * Why an abstract Unix socket, not flock/fcntl: Node 20's node:fs has neither, and every npm
 * package that has them needs native code a Raspberry Pi may not be able to get without a
 * compiler (checked 2026: `fs-ext` and `os-lock` compile with node-gyp at install;
 * `fs-native-extensions` ships prebuilds for linux-x64 and linux-arm64 but not linux-arm, i.e.
 * 32-bit Raspberry Pi OS; `proper-lockfile` is mkdir plus mtime, which a dead holder does not
 * release). A Linux abstract socket (a name starting with NUL, no file behind it) can be bound by
 * one socket at a time: a second bind fails with EADDRINUSE, from this process or another, and the
 * kernel frees the name as soon as the holder's last descriptor closes, which includes every way
 * a process dies (SIGKILL, OOM kill, a crash). Plain node:net, no dependency.
 *
 * The name is the directory's device and inode (plus the lock file's name), not its path, so two
 * paths to one directory (a symlink, a bind mount, `..`) collide.
 *
 * Limits, by design of abstract sockets:
 * - Linux only (elsewhere `osLock` rejects with ENOTSUP).
 * - The abstract namespace belongs to a network namespace: two processes in different network
 *   namespaces (two containers without host networking sharing one volume, a systemd unit with
 *   PrivateNetwork=) do not see each other's lock. Run one owner per directory in such setups.
 * - Any local user can bind any abstract name: a hostile local user could squat the name and keep
 *   ferry from starting (never the reverse: it cannot make two owners share a directory).
 *
 * The file at `path` gets the holder's PID for people and error messages only; it is never read
 * to decide anything, and failing to write it (a full disk) does not fail the lock: a store on a
 * full disk must still start and drain.
 */
import { createServer, type Server } from 'node:net';
import { createHash } from 'node:crypto';
import { readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { FileLock } from './files.js';

/** Abstract names in this process, for a clearer message when this process already holds one. */
const heldHere = new Set<string>();

/**
 * Takes the exclusive lock for `path` (its directory must exist). Rejects with `code` 'ELOCKED'
 * while any live process holds it, this one included; a dead holder's lock is free at once.
 * The lock does not keep the process alive.
 */
export async function osLock(path: string): Promise<FileLock> {
  if (process.platform !== 'linux') {
    throw Object.assign(new Error(`cannot lock ${path}: locks need Linux abstract sockets (platform ${process.platform})`), { code: 'ENOTSUP' });
  }
  const file = resolve(path);
  const name = await lockName(file);
  const server = createServer((socket) => socket.destroy());
  try {
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      // exclusive: a cluster worker binds itself instead of sharing the primary's handle.
      server.listen({ path: name, exclusive: true }, () => {
        server.off('error', fail);
        ok();
      });
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    throw Object.assign(new Error(`${file} is locked by ${await holderOf(file, name)}`), { code: 'ELOCKED', path: file, cause: err });
  }
  server.unref();
  heldHere.add(name);
  await writeFile(file, `${process.pid}\n`, { mode: 0o600 }).catch(() => undefined);
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      // The file goes first: once the name is free, a new holder writes its own PID there.
      await unlink(file).catch(() => undefined);
      heldHere.delete(name);
      await closeServer(server);
    },
  };
}

/**
 * `osLock`, but while another holds the lock it tries again every `retryMs` for up to `waitMsMax`
 * (for short critical sections such as a CLI command's read-modify-write of one file), then
 * rejects with the last ELOCKED. Other errors reject at once.
 */
export async function osLockWaiting(path: string, opts: { waitMsMax: number; retryMs?: number }): Promise<FileLock> {
  const until = Date.now() + opts.waitMsMax;
  for (;;) {
    try {
      return await osLock(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED' || Date.now() >= until) throw err;
    }
    await new Promise((ok) => setTimeout(ok, Math.min(opts.retryMs ?? 20, Math.max(1, until - Date.now()))));
  }
}

/** `\0ferry-lock:DEV:INO:NAME`: within the 107 bytes a socket name may have (long names are hashed). */
async function lockName(file: string): Promise<string> {
  const dir = await stat(dirname(file), { bigint: true });
  const base = basename(file);
  const part = Buffer.byteLength(base) <= 40 ? base : `#${createHash('sha256').update(base).digest('hex').slice(0, 32)}`;
  return `\0ferry-lock:${dir.dev}:${dir.ino}:${part}`;
}

async function holderOf(file: string, name: string): Promise<string> {
  if (heldHere.has(name)) return `this process (pid ${process.pid})`;
  const text = await readFile(file, 'utf8').catch(() => '');
  const pid = /^\d+$/.test(text.trim()) ? text.trim() : null;
  return pid !== null ? `another live process (the lock file names pid ${pid})` : 'another live process';
}

function closeServer(server: Server): Promise<void> {
  return new Promise((ok) => server.close(() => ok()));
}

import { spawn } from 'node:child_process';
import { lstat, mkdir, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { LINK_PATH_PATTERN } from './config.js';
import { SimError, SimErrorCode } from './errors.js';

/**
 * A linked pseudo-terminal pair made by socat: bytes written on one side come out of the other.
 * Each side is reached through a symlink to its `/dev/pts/N`.
 */
export interface PtyPair {
  /** The agent's side: the configured link path. */
  devicePath: string;
  /** The simulator's side: `<devicePath>.sim`. */
  simPath: string;
  /** socat's process id. */
  pid: number;
  /** Resolves when socat exits, for whatever reason. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Stops socat (SIGTERM, SIGKILL after a grace period) and removes both links. Idempotent. */
  close(): Promise<void>;
}

export interface PtyOptions {
  /** How long socat may take to create both links. */
  readyMsMax?: number;
  /** How long socat may take to exit after SIGTERM before it gets SIGKILL. */
  closeMsMax?: number;
  /** The socat executable. */
  socat?: string;
  /** socat's diagnostics (`-d -d`), one line at a time. */
  log?: (line: string) => void;
}

const stderrTailBytesMax = 4096;
const pollMs = 20;

/** The sim-side link that goes with an agent-side link. */
export function simLinkFor(devicePath: string): string {
  return `${devicePath}.sim`;
}

/**
 * Spawns `socat -d -d pty,raw,echo=0,link=<simPath> pty,raw,echo=0,link=<devicePath>` and resolves
 * once both links exist. Creates the parent folder; removes stale symlinks at both paths first
 * (but refuses to touch anything at those paths that is not a symlink).
 */
export async function openPtyPair(linkPath: string, options: PtyOptions = {}): Promise<PtyPair> {
  const { readyMsMax = 5000, closeMsMax = 2000, socat = 'socat', log } = options;
  if (!LINK_PATH_PATTERN.test(linkPath)) {
    throw new SimError(SimErrorCode.LINK_INVALID, `link path ${JSON.stringify(linkPath)}: use only letters, digits, _ . + @ - and / (socat's address syntax reserves the others)`);
  }
  const devicePath = linkPath;
  const simPath = simLinkFor(linkPath);
  await mkdir(dirname(devicePath), { recursive: true });
  for (const path of [devicePath, simPath]) await removeStaleLink(path, log);

  const child = spawn(socat, ['-d', '-d', `pty,raw,echo=0,link=${simPath}`, `pty,raw,echo=0,link=${devicePath}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderrTail = '';
  let partial = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderrTail = (stderrTail + chunk).slice(-stderrTailBytesMax);
    if (!log) return;
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line) log(line);
  });

  let spawnError: NodeJS.ErrnoException | undefined;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      spawnError = err;
      // A process that never started emits no 'exit'.
      if (child.pid === undefined) resolve({ code: null, signal: null });
    });
  });

  // On the way out, remove only our symlinks; anything else put there since is left alone.
  const removeLinks = async (): Promise<void> => {
    for (const path of [devicePath, simPath]) await removeStaleLink(path).catch(() => undefined);
  };

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      if (child.pid !== undefined && exit === undefined) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), closeMsMax);
        await exited;
        clearTimeout(killer);
      }
      await removeLinks();
    })());

  const deadline = Date.now() + readyMsMax;
  for (;;) {
    if (spawnError?.code === 'ENOENT') {
      await close();
      throw new SimError(SimErrorCode.SOCAT_MISSING, `cannot start ${socat}: not installed; install the Debian package socat (apt-get install socat)`, { cause: spawnError });
    }
    if (spawnError) {
      await close();
      throw new SimError(SimErrorCode.PTY_FAILED, `cannot start ${socat}: ${spawnError.message}`, { cause: spawnError });
    }
    if (exit) {
      await removeLinks();
      throw new SimError(SimErrorCode.PTY_FAILED, `socat exited (${exit.signal ?? `code ${exit.code}`}) before the pseudo-terminals were ready: ${stderrTail.trim() || '(no output)'}`);
    }
    if ((await linkReady(devicePath)) && (await linkReady(simPath))) break;
    if (Date.now() > deadline) {
      await close();
      throw new SimError(SimErrorCode.PTY_FAILED, `socat did not create ${simPath} and ${devicePath} within ${readyMsMax} ms: ${stderrTail.trim() || '(no output)'}`);
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  return { devicePath, simPath, pid: child.pid!, exited, close };
}

/** A link that exists and points at something that exists. */
async function linkReady(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isSymbolicLink() && (await stat(path)).isCharacterDevice();
  } catch {
    return false;
  }
}

async function removeStaleLink(path: string, log?: (line: string) => void): Promise<void> {
  let isLink: boolean;
  try {
    isLink = (await lstat(path)).isSymbolicLink();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isLink) {
    throw new SimError(SimErrorCode.LINK_INVALID, `${path} exists and is not a symlink; refusing to replace it (choose another link path)`);
  }
  log?.(`firmware-sim: removing stale link ${path}`);
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * A real forward proxy for tests: tinyproxy from Debian (scripts/bootstrap.sh test installs it),
 * private to one test, on a free 127.0.0.1 port, with its own config, log and PidFile in a fresh
 * temp dir. It runs in the foreground (`-d`), so the PID we spawned is the proxy itself (the same
 * one it writes to its PidFile), and it is stopped by that PID alone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort } from './free-port.js';

export interface Tinyproxy {
  /** `http://127.0.0.1:PORT`: what HTTP_PROXY / HTTPS_PROXY name. */
  url: string;
  port: number;
  pid: number;
  /** The temp dir with `tinyproxy.conf`, `tinyproxy.log` and `tinyproxy.pid`; removed by `stop()`. */
  dir: string;
  /** The proxy's log so far (LogLevel Info: one `Request (file descriptor N): METHOD URL` line per request). */
  log(): string;
  /** SIGTERM to its PID, SIGKILL if it has not exited after a bound, then removes `dir`. Idempotent. */
  stop(): Promise<void>;
}

export interface StartTinyproxyOptions {
  /**
   * The ports CONNECT may reach (tinyproxy's `ConnectPort`). Required, because tinyproxy allows
   * every port when no `ConnectPort` line is given: a test should name the ports it means.
   */
  connectPorts: readonly number[];
  /** How long to wait for the proxy to accept connections (default 5000). */
  startTimeoutMs?: number;
  /** Seconds of idleness after which tinyproxy closes a connection (its `Timeout`; default 600). */
  idleTimeoutS?: number;
}

const stopTimeoutMs = 3000;
const logTailChars = 3000;

/** The tinyproxy binary: Debian puts it in /usr/bin; /usr/sbin and /usr/local are looked at too. */
export function findTinyproxy(): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter((d) => d.length > 0), '/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin'];
  for (const dir of dirs) {
    const file = join(dir, 'tinyproxy');
    try {
      accessSync(file, fsConstants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  throw new Error('tinyproxy not found on PATH or in /usr/bin: install it with `apt-get install -y tinyproxy` (scripts/bootstrap.sh test does)');
}

function config(port: number, dir: string, opts: StartTinyproxyOptions): string {
  return [
    `Port ${port}`,
    'Listen 127.0.0.1',
    'Allow 127.0.0.1',
    `Timeout ${opts.idleTimeoutS ?? 600}`,
    `LogFile "${join(dir, 'tinyproxy.log')}"`,
    'LogLevel Info',
    `PidFile "${join(dir, 'tinyproxy.pid')}"`,
    'MaxClients 100',
    // No `User`: as root it would switch to that user, who could not write the log in our temp dir.
    ...opts.connectPorts.map((p) => `ConnectPort ${p}`),
  ].join('\n') + '\n';
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(exited(child)), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.setTimeout(500);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

function readLog(dir: string): string {
  try {
    return readFileSync(join(dir, 'tinyproxy.log'), 'utf8');
  } catch {
    return '';
  }
}

/**
 * Starts a private tinyproxy and resolves once it accepts TCP connections. Throws with the end of
 * its log if it does not start in time. The caller must `stop()` it (t.teardown); a process exit
 * kills it as a last resort.
 */
export async function startTinyproxy(opts: StartTinyproxyOptions): Promise<Tinyproxy> {
  if (opts.connectPorts.length === 0) throw new Error('startTinyproxy: connectPorts is empty (tinyproxy would then allow CONNECT to every port)');
  let lastError: Error | undefined;
  for (let i = 0; i < 3; i++) { // a port from freePort() may be taken before tinyproxy binds it
    try {
      return await startOnce(await freePort(), opts);
    } catch (err) {
      lastError = err as Error;
    }
  }
  throw lastError!;
}

async function startOnce(port: number, opts: StartTinyproxyOptions): Promise<Tinyproxy> {
  const bin = findTinyproxy();
  const dir = await mkdtemp(join(tmpdir(), 'ferry-tinyproxy-'));
  const confFile = join(dir, 'tinyproxy.conf');
  await writeFile(confFile, config(port, dir, opts));
  const child = spawn(bin, ['-d', '-c', confFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-logTailChars);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });
  const killOnExit = (): void => {
    if (!exited(child)) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!exited(child) && child.pid !== undefined) {
        child.kill('SIGTERM');
        if (!(await waitExit(child, stopTimeoutMs))) {
          child.kill('SIGKILL');
          await waitExit(child, stopTimeoutMs);
        }
      }
      process.removeListener('exit', killOnExit);
      child.stdout?.destroy();
      child.stderr?.destroy();
      await rm(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  const startTimeoutMs = opts.startTimeoutMs ?? 5000;
  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    if (spawnError !== undefined || exited(child)) {
      const why = spawnError ? `could not be spawned (${spawnError.message})` : `exited with ${child.exitCode ?? child.signalCode}`;
      const tail = (readLog(dir) + output).slice(-logTailChars);
      await stop();
      throw new Error(`tinyproxy (${bin}) on 127.0.0.1:${port} ${why}; log tail:\n${tail}`);
    }
    // The log line shows our process bound the port (not some other process that holds it).
    if (/Accepting connections/.test(readLog(dir)) && (await canConnect(port)) && !exited(child)) break;
    if (Date.now() > deadline) {
      const tail = (readLog(dir) + output).slice(-logTailChars);
      await stop();
      throw new Error(`tinyproxy (${bin}) did not accept connections on 127.0.0.1:${port} within ${startTimeoutMs} ms; log tail:\n${tail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }

  return { url: `http://127.0.0.1:${port}`, port, pid: child.pid!, dir, log: () => readLog(dir), stop };
}

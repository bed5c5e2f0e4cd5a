import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort } from './free-port.js';

export interface Mosquitto {
  port: number;
  /** `mqtt://127.0.0.1:PORT` */
  url: string;
  pid: number;
  /** The temp dir holding `mosquitto.conf` and `mosquitto.log`; removed by `stop()`. */
  dir: string;
  /** SIGTERM, SIGKILL if it has not exited after a bound, then removes `dir`. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL now (a crash); `dir` stays until `stop()`. */
  kill(): void;
}

export interface StartMosquittoOptions {
  /** Listen on this port (to restart a broker where clients expect it); a free one by default. */
  port?: number;
  /** How long to wait for the broker to accept connections (default 5000). */
  startTimeoutMs?: number;
  /**
   * Keep sessions and queued QoS 1 messages in this directory (saved on SIGTERM, read at start),
   * so a broker restarted on it keeps its persistent subscribers. Not removed by `stop()`.
   */
  persistDir?: string;
  /** Users and their passwords: the broker then refuses anonymous clients and checks these (a mosquitto_passwd file). */
  users?: Record<string, string>;
}

const stopTimeoutMs = 3000;
const logTailLines = 20;

/** The mosquitto binary: on PATH, else /usr/sbin/mosquitto (Debian puts it there, outside a normal user's PATH). */
export function findMosquitto(): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter((d) => d.length > 0), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    const file = join(dir, 'mosquitto');
    try {
      accessSync(file, fsConstants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  throw new Error('mosquitto not found on PATH or in /usr/sbin: install it with `apt-get install -y mosquitto` (scripts/bootstrap.sh test does)');
}

/** Writes `users` into a mosquitto password file (hashed by mosquitto_passwd, which Debian's mosquitto puts on PATH). */
function writePasswordFile(file: string, users: Record<string, string>): void {
  Object.entries(users).forEach(([user, password], i) => {
    execFileSync('mosquitto_passwd', ['-b', ...(i === 0 ? ['-c'] : []), file, user, password], { stdio: 'pipe' });
  });
}

function config(port: number, dir: string, persistDir: string | undefined, passwordFile?: string): string {
  const lines = [
    `listener ${port} 127.0.0.1`,
    ...(passwordFile !== undefined ? ['allow_anonymous false', `password_file ${passwordFile}`] : ['allow_anonymous true']),
    'set_tcp_nodelay true',
    'max_queued_messages 0',
    ...(persistDir ? ['persistence true', `persistence_location ${persistDir}/`] : ['persistence false']),
    `log_dest file ${join(dir, 'mosquitto.log')}`,
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
  ];
  // As root mosquitto drops to user `mosquitto`, which then cannot write the log in our temp dir.
  if (process.getuid?.() === 0) lines.push('user root');
  return lines.join('\n') + '\n';
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

async function logTail(dir: string, output: string): Promise<string> {
  let text = '';
  try {
    text = await readFile(join(dir, 'mosquitto.log'), 'utf8');
  } catch {
    // no log written
  }
  const lines = (text + output).split('\n').filter((l) => l.trim().length > 0);
  return lines.slice(-logTailLines).join('\n');
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

/**
 * Starts a private mosquitto on 127.0.0.1 with its own config and log in a fresh temp dir, and
 * resolves once it accepts TCP connections. Throws with the log tail if it does not start in time.
 * The caller must `stop()` it (t.teardown); a process exit kills it as a last resort.
 */
export async function startMosquitto(opts: StartMosquittoOptions = {}): Promise<Mosquitto> {
  const attempts = opts.port === undefined ? 3 : 1; // a port from freePort() may be taken before mosquitto binds it
  let lastError: Error | undefined;
  for (let i = 0; i < attempts; i++) {
    try {
      return await startOnce(opts.port ?? (await freePort()), opts.startTimeoutMs ?? 5000, opts.persistDir, opts.users);
    } catch (err) {
      lastError = err as Error;
    }
  }
  throw lastError!;
}

async function startOnce(port: number, startTimeoutMs: number, persistDir?: string, users?: Record<string, string>): Promise<Mosquitto> {
  const bin = findMosquitto();
  const dir = await mkdtemp(join(tmpdir(), 'ferry-mosquitto-'));
  const confFile = join(dir, 'mosquitto.conf');
  let passwordFile: string | undefined;
  if (users !== undefined) {
    passwordFile = join(dir, 'passwords');
    writePasswordFile(passwordFile, users);
  }
  await writeFile(confFile, config(port, dir, persistDir, passwordFile));
  const child = spawn(bin, ['-c', confFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-4096);
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
        child.kill('SIGCONT'); // a broker a test froze with SIGSTOP must run to act on SIGTERM
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

  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    if (spawnError !== undefined || exited(child)) {
      const why = spawnError ? `could not be spawned (${spawnError.message})` : `exited with ${child.exitCode ?? child.signalCode}`;
      const tail = await logTail(dir, output);
      await stop();
      throw new Error(`mosquitto (${bin}) on 127.0.0.1:${port} ${why}; log tail:\n${tail}`);
    }
    // "running" is logged once the listener is bound; the probe shows it accepts connections.
    const log = await logTail(dir, '');
    if (/ running\b/.test(log) && (await canConnect(port)) && !exited(child)) break;
    if (Date.now() > deadline) {
      const tail = await logTail(dir, output);
      await stop();
      throw new Error(`mosquitto (${bin}) did not accept connections on 127.0.0.1:${port} within ${startTimeoutMs} ms; log tail:\n${tail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }

  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    pid: child.pid!,
    dir,
    stop,
    kill: () => {
      if (!exited(child)) child.kill('SIGKILL');
    },
  };
}

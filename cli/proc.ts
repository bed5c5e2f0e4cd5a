import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { basename, dirname, join } from 'node:path';

/** The compiled CLI entry: next to this module in dist/cli, or in dist/cli when this runs from source (tests). */
const here = dirname(fileURLToPath(import.meta.url));
export const ferryBin = basename(dirname(here)) === 'dist' ? join(here, 'ferry.js') : join(here, '..', 'dist', 'cli', 'ferry.js');

/** The environment for a child ferry: without a test runner's loader hooks, so it runs as a user's would. */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}

export interface FerryProcess {
  child: ChildProcess;
  pid: number;
  /** the first stdout line matching the ready pattern */
  ready: Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** stdout and stderr so far (also copied to the log file) */
  output(): string;
  kill(signal?: NodeJS.Signals): void;
}

/**
 * Starts `ferry <args>` as a separate process (as a user would), copying its output to `logFile`
 * and resolving `ready` when stdout prints a line matching `readyPattern`.
 */
/**
 * @param opts.wrap a command that runs ferry, e.g. `['ip', 'netns', 'exec', NAME]` (it must exec
 *   node in its place, so the PID and signals are ferry's)
 */
export function startFerry(args: string[], opts: { readyPattern: RegExp; logFile?: string; readyMsMax?: number; env?: NodeJS.ProcessEnv; wrap?: readonly string[] }): FerryProcess {
  const argv = [process.execPath, ferryBin, ...args];
  const [cmd, ...rest] = opts.wrap && opts.wrap.length > 0 ? [...opts.wrap, ...argv] : argv;
  const child = spawn(cmd!, rest, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? childEnv() });
  const log = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : null;
  let out = '';
  const outMax = 1 << 20;
  const keep = (chunk: Buffer): void => {
    log?.write(chunk);
    out += chunk.toString();
    if (out.length > outMax) out = out.slice(-outMax / 2);
  };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      log?.end();
      resolve({ code, signal });
    });
  });
  const ready = new Promise<RegExpMatchArray>((resolve, reject) => {
    let lineBuf = '';
    const timer = setTimeout(() => reject(new Error(`ferry ${args[0]} not ready within ${opts.readyMsMax ?? 15000} ms; output:\n${out.slice(-4000)}`)), opts.readyMsMax ?? 15000);
    child.stdout!.on('data', (chunk: Buffer) => {
      lineBuf += chunk.toString();
      const m = lineBuf.match(opts.readyPattern);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`ferry ${args[0]} exited (${signal ?? code}) before it was ready; output:\n${out.slice(-4000)}`));
    });
  });
  ready.catch(() => undefined);
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return {
    child,
    pid: child.pid!,
    ready,
    exited,
    output: () => out,
    kill: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

/** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
export async function stopProcess(p: FerryProcess, graceMs = 5000): Promise<void> {
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(t);
}

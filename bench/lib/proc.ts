/**
 * Child processes of the benchmark: spawned under `taskset -c` (taskset execs, so the PID is the
 * program's own), stopped by PID, registered with a Cleanup so a failure still stops them.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Cleanup } from './cleanup.js';

export interface Proc {
  name: string;
  pid: number;
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** stdout and stderr so far (the last MiB) */
  output(): string;
  /** resolves with the first stdout match of `pattern` (`from: 'any'`: stdout and stderr, e.g. a JSON log line); rejects on exit or after `ms` */
  waitFor(pattern: RegExp, ms?: number, from?: 'stdout' | 'any'): Promise<RegExpMatchArray>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it exited. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

const outMax = 1 << 20;

/** `taskset -c CPUS node [nodeArgs] script [args]`: a Node program pinned to `cpus`. */
export function pinnedNode(cpus: string, script: string, args: string[], nodeArgs: string[] = []): [string, string[]] {
  return ['taskset', ['-c', cpus, process.execPath, ...nodeArgs, script, ...args]];
}

/** `env`: set on top of this process's environment. */
export function spawnProc(name: string, [cmd, args]: [string, string[]], opts: { cleanup: Cleanup; logFile?: string; env?: Record<string, string> }): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(opts.env ? { env: { ...process.env, ...opts.env } } : {}) });
  if (child.pid === undefined) throw new Error(`${name}: could not spawn ${cmd}`);
  const log = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : null;
  let out = '';
  let stdout = '';
  const keep = (chunk: Buffer): void => {
    log?.write(chunk);
    out = (out + chunk.toString()).slice(-outMax);
  };
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout = (stdout + chunk.toString()).slice(-outMax);
    keep(chunk);
  });
  child.stderr!.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  void exited.then(() => log?.end());
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  let stopping: Promise<void> | null = null;
  const proc: Proc = {
    name,
    pid: child.pid,
    child,
    exited,
    output: () => out,
    waitFor(pattern, ms = 15_000, from = 'stdout') {
      const streams = from === 'any' ? [child.stdout!, child.stderr!] : [child.stdout!];
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = (from === 'any' ? out : stdout).match(pattern);
          if (m) done(() => resolve(m));
        };
        const timer = setTimeout(() => done(() => reject(new Error(`${name}: no ${pattern} within ${ms} ms; output:\n${out.slice(-3000)}`))), ms);
        const done = (settle: () => void): void => {
          clearTimeout(timer);
          for (const s of streams) s.off('data', check);
          settle();
        };
        for (const s of streams) s.on('data', check);
        void exited.then(({ code, signal }) => done(() => reject(new Error(`${name} exited (${signal ?? code}); output:\n${out.slice(-3000)}`))));
        check();
      });
    },
    stop(graceMs = 5000) {
      stopping ??= (async () => {
        if (alive()) {
          process.kill(proc.pid, 'SIGTERM');
          const timer = setTimeout(() => alive() && process.kill(proc.pid, 'SIGKILL'), graceMs);
          await exited;
          clearTimeout(timer);
        }
      })();
      return stopping;
    },
  };
  opts.cleanup.defer(`stop ${name} (pid ${proc.pid})`, () => proc.stop());
  return proc;
}

/** The CPUs a process may run on, from /proc/PID/status (`Cpus_allowed_list`). */
export async function cpusAllowed(pid: number): Promise<string> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return status.match(/^Cpus_allowed_list:\s*(\S+)/m)?.[1] ?? '?';
}

/** Pins every thread of a running process (one we did not spawn ourselves, e.g. mosquitto). */
export async function pinPid(pid: number, cpus: string): Promise<void> {
  await promisify(execFile)('taskset', ['-a', '-p', '-c', cpus, String(pid)]);
}

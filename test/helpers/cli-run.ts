import { spawn } from 'node:child_process';
import { ferryBin } from '../../cli/proc.js';

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built `ferry` CLI to its end, as a user would (without the test runner's NODE_OPTIONS
 * loaders), and collects its output; killed after `timeoutMs`, a bound against a process that
 * started a server after all. `opts.input` is written to its stdin (else stdin is empty).
 */
export function runFerry(args: string[], timeoutMs = 20_000, opts: { input?: string | Buffer } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const child = spawn(process.execPath, [ferryBin, ...args], { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env });
    if (opts.input !== undefined) {
      // A child that refuses the input stops reading it: EPIPE here is its answer, not a failure.
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(opts.input);
    }
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

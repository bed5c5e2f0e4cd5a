/**
 * The `exec` downlink consumer: runs the route's command (no shell: `command[0]` with the rest as
 * its arguments) once per message, with the message's data on stdin (a string as it is, bytes as
 * they are, any other JSON value as its JSON text) and FERRY_MESSAGE_ID, FERRY_TARGET in its
 * environment (besides the agent's own). Exit 0 accepts the message; any other exit, a signal, or
 * a command that cannot be started refuses it (DOWNLINK_EXEC_FAILED, with the exit code or signal
 * and the last 512 bytes of stderr). Past timeoutMs the command's process group is killed
 * (SIGKILL) and the message refused with DOWNLINK_TIMEOUT.
 *
 * Memory per run is bounded: stdout goes to /dev/null, and of stderr only the tail is kept. The
 * command runs in a process group of its own, so a time-out also kills what it started (a shell
 * script's children), and a child that keeps stderr open cannot hold the verdict past the time-out.
 * When the command exits, whatever it left running in its group is killed too (as systemd does
 * with a finished unit's processes): otherwise every message could leave one more process behind.
 * A command that must start a lasting service hands it to the service manager (systemd-run).
 */
import { spawn as nodeSpawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import type { Clock } from '../../common/clock.js';
import type { Log } from '../../common/log.js';
import { ErrorCode } from '../../protocol/errors.js';
import type { PacketData } from '../../protocol/packet.js';
import type { DownlinkConsumer, DownlinkMessage, Verdict } from './consumer.js';

export const stderrTailBytesMax = 512;

export type Spawn = (command: string, args: readonly string[], opts: SpawnOptions) => ChildProcess;

export interface ExecDeps {
  clock: Clock;
  log: Log;
  /** default node:child_process spawn */
  spawn?: Spawn;
  /** the environment the command gets, besides FERRY_*; default process.env */
  env?: NodeJS.ProcessEnv;
}

/** The bytes on the command's stdin. */
export function stdinBytes(data: PacketData): Buffer {
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(typeof data === 'string' ? data : JSON.stringify(data));
}

export class ExecConsumer implements DownlinkConsumer {
  private readonly running = new Set<ChildProcess>();

  constructor(private readonly command: readonly string[], private readonly timeoutMs: number, private readonly deps: ExecDeps) {
    if (command.length === 0) throw new Error('exec consumer: empty command');
  }

  deliver(m: DownlinkMessage): Promise<Verdict> {
    const [file, ...args] = this.command as [string, ...string[]];
    const { clock } = this.deps;
    return new Promise((resolve) => {
      let child: ChildProcess;
      try {
        child = (this.deps.spawn ?? nodeSpawn)(file, args, {
          stdio: ['pipe', 'ignore', 'pipe'],
          detached: true,
          env: { ...(this.deps.env ?? process.env), FERRY_MESSAGE_ID: m.id, FERRY_TARGET: m.target },
        });
      } catch (err) {
        resolve(failed(`cannot start ${file}: ${(err as Error).message}`));
        return;
      }
      this.running.add(child);
      let tail: Buffer = Buffer.alloc(0);
      let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
      let done = false;
      const finish = (v: Verdict): void => {
        if (done) return;
        done = true;
        clock.clearTimeout(timer);
        this.running.delete(child);
        resolve(v);
      };
      const verdictOfExit = (): Verdict => {
        const e = exit!;
        if (e.code === 0) return { ok: true };
        const how = e.code !== null ? `exited with code ${e.code}` : `was killed by ${e.signal}`;
        const stderr = tail.toString('utf8').trim();
        return failed(`${file} ${how}${stderr ? `; stderr: ${stderr}` : ''}`);
      };
      const timer = clock.setTimeout(() => {
        killGroup(child);
        // Exited already, only its stdio held open by what it started: its own verdict stands.
        if (exit) finish(verdictOfExit());
        else finish({ ok: false, code: ErrorCode.DOWNLINK_TIMEOUT, reason: `${file} did not finish within ${this.timeoutMs} ms; killed` });
      }, this.timeoutMs);
      child.once('error', (err: NodeJS.ErrnoException) => {
        // Not started (ENOENT, EACCES): there is no exit to wait for.
        if (child.pid === undefined) finish(failed(`cannot start ${file}: ${err.code ?? err.message}`));
      });
      child.stderr?.on('data', (chunk: Buffer) => {
        // A copy of the tail, never a view that would keep a large chunk alive.
        const all = chunk.length >= stderrTailBytesMax ? chunk : Buffer.concat([tail, chunk]);
        tail = all.length <= stderrTailBytesMax ? all : Buffer.from(all.subarray(-stderrTailBytesMax));
      });
      child.once('exit', (code, signal) => {
        exit = { code, signal };
        // What it left running in the background goes with it: one message, one run, nothing left behind.
        killGroup(child);
      });
      child.once('close', () => {
        if (exit) finish(verdictOfExit());
      });
      // A command that exits without reading stdin: EPIPE on our side, which is not its verdict.
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(stdinBytes(m.data));
    });
  }

  /** Kills the commands still running (the agent is stopping). */
  async close(): Promise<void> {
    for (const c of this.running) killGroup(c);
  }
}

function failed(reason: string): Verdict {
  return { ok: false, code: ErrorCode.DOWNLINK_EXEC_FAILED, reason };
}

/** SIGKILL to the command's process group (it leads one: detached), else to the command alone. */
function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    try {
      child.kill('SIGKILL');
    } catch {
      /* gone already */
    }
  }
}

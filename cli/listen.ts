/**
 * `ferry listen --target PATTERN`: a downlink subscriber on the agent's local socket
 * (agent/local-api.ts). Prints each message as one JSON line `{"id","target","data","ts"}` on
 * stdout and acks it only once the line is written (a reader that takes stdout from a pipe has
 * it before the agent hears the ack). Runs until SIGINT/SIGTERM, or until `--count N` messages
 * were printed and acked. Loaded only when the command runs (cli/commands.ts), so other commands start lean.
 */
import { createConnection, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import { LineSplitter } from '../agent/sources/line-splitter.js';
import { agentSocketPath } from './agent-socket.js';

/** Lines from the agent: one response per request, and pushed messages (docs/downlink.md). */
const agentLineBytesMax = 2 * 1024 * 1024;

export async function runListen(args: string[]): Promise<number> {
  let f: { target?: string; socket?: string; config?: string; count?: string };
  try {
    f = parseArgs({ args, options: { target: { type: 'string' }, socket: { type: 'string' }, config: { type: 'string' }, count: { type: 'string' } }, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new FerryError(ErrorCode.CONFIG_INVALID, (err as Error).message);
  }
  if (f.target === undefined) throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, '--target is required');
  const count = f.count === undefined ? undefined : Number(f.count);
  if (count !== undefined && (!Number.isSafeInteger(count) || count < 1)) throw new FerryError(ErrorCode.CONFIG_INVALID, `--count: expected a positive integer, got '${f.count}'`);
  return listen(await agentSocketPath(f), f.target, count);
}

function listen(socketPath: string, target: string, count: number | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const c: Socket = createConnection(socketPath);
    const splitter = new LineSplitter(agentLineBytesMax);
    let subscribed = false;
    let printed = 0;
    /** acks sent whose response has not come yet */
    let acksOpen = 0;
    let ending = false;
    const finish = (code: number, err?: Error): void => {
      if (ending) return;
      ending = true;
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      c.destroy();
      if (err) reject(err);
      else resolve(code);
    };
    const onSignal = (): void => finish(0);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const send = (req: object): void => void c.write(`${JSON.stringify(req)}\n`);

    const onLine = (line: string): void => {
      let v: Record<string, unknown>;
      try {
        v = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return finish(1, new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, `the agent sent a line that is not JSON: ${line.slice(0, 100)}`));
      }
      // A response has "ok" (an error's "message" is its text); a pushed message has no "ok".
      if (!('ok' in v)) {
        if (typeof v.message !== 'object' || v.message === null) return finish(1, new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, `the agent sent a line that is neither a response nor a message: ${line.slice(0, 100)}`));
        return onMessage(v.message as Record<string, unknown>);
      }
      // A response: to the subscribe first, then to each ack in order.
      if (!subscribed) {
        if (v.ok !== true) return finish(1, new FerryError(String(v.code ?? ErrorCode.LOCAL_REQUEST_INVALID) as ErrorCode, `subscribe refused: ${String(v.message ?? 'no reason')}`));
        subscribed = true;
        process.stderr.write(`ferry listen: subscribed to ${target} on ${socketPath}\n`);
        return;
      }
      acksOpen--;
      if (v.ok !== true) process.stderr.write(`ferry listen: the agent did not take an ack: ${String(v.message ?? v.code)} [${String(v.code)}]\n`);
      if (count !== undefined && printed >= count && acksOpen === 0) finish(0);
    };

    const onMessage = (m: Record<string, unknown>): void => {
      if (count !== undefined && printed >= count) return; // more than asked for: left unanswered, so another subscriber gets it
      printed++;
      const text = `${JSON.stringify({ id: m.id, target: m.target, data: m.data, ts: m.ts })}\n`;
      process.stdout.write(text, (err) => {
        // Not written (stdout closed): not acked, so the agent hands it to another subscriber or refuses it.
        if (err) return finish(1, new FerryError(ErrorCode.INTERNAL, `cannot write to stdout: ${err.message}`));
        acksOpen++;
        send({ op: 'ack', id: m.id });
      });
    };

    c.once('connect', () => send({ op: 'subscribe', target }));
    c.on('data', (chunk: Buffer) => {
      const before = splitter.overlong;
      for (const line of splitter.push(chunk)) if (!ending) onLine(line);
      if (splitter.overlong > before) finish(1, new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, `the agent sent a line longer than ${agentLineBytesMax} bytes`));
    });
    c.once('error', (err: NodeJS.ErrnoException) => {
      finish(1, new FerryError(ErrorCode.AGENT_UNREACHABLE, `no agent listening on ${socketPath} (${err.code ?? err.message})`, { cause: err }));
    });
    c.once('close', () => finish(1, new FerryError(ErrorCode.AGENT_UNREACHABLE, `the agent on ${socketPath} closed the connection`)));
  });
}

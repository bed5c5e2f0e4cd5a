/**
 * The client side of the agent's local API (agent/local-api.ts has the protocol): kept apart from
 * the server so that `ferry send` loads this, the error catalogue and nothing of the agent.
 */
import { createConnection } from 'node:net';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import type { PacketData } from '../protocol/packet.js';

export type LocalRequest =
  | { op: 'send'; target: string; data: PacketData; ttlMs?: number; priority?: number }
  | { op: 'stats' }
  | { op: 'deadLetters' }
  | { op: 'requeueDeadLetters' }
  | { op: 'subscribe'; target: string }
  | { op: 'ack'; id: string }
  | { op: 'refuse'; id: string; reason: string };
export type LocalResponse =
  | { ok: true; seq?: number; stats?: unknown; deadLetters?: unknown[]; requeued?: number }
  | { ok: false; code: string; message: string };

/** Client side: one request, one response. Throws AGENT_UNREACHABLE if no agent listens. */
export async function localRequest(socketPath: string, req: LocalRequest, timeoutMs = 10_000): Promise<LocalResponse> {
  return new Promise((resolve, reject) => {
    const c = createConnection(socketPath);
    let buf = '';
    const timer = setTimeout(() => {
      c.destroy();
      reject(new FerryError(ErrorCode.AGENT_UNREACHABLE, `no answer from the agent on ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    c.setEncoding('utf8');
    c.once('connect', () => c.write(`${JSON.stringify(req)}\n`));
    c.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      c.end();
      try {
        resolve(JSON.parse(buf.slice(0, nl)) as LocalResponse);
      } catch (err) {
        reject(err);
      }
    });
    c.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new FerryError(ErrorCode.AGENT_UNREACHABLE, `no agent listening on ${socketPath} (${err.code ?? err.message})`, { cause: err }));
    });
  });
}

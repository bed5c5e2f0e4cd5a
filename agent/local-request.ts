/**
 * The client side of the agent's local API (agent/local-api.ts has the protocol): kept apart from
 * the server so that `ferry send` loads this, the error catalogue and nothing of the agent.
 */
import { createConnection } from 'node:net';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import type { PacketData } from '../protocol/packet.js';

/** A request line longer than this (bytes, without its newline) is refused and the connection closed. */
export const localLineBytesMax = 256 * 1024;

export type LocalRequest =
  | { op: 'send'; target: string; data: PacketData; ttlMs?: number; priority?: number }
  | { op: 'stats' }
  | { op: 'status' }
  | { op: 'deadLetters' }
  | { op: 'requeueDeadLetters' }
  | { op: 'waitAcked'; seq: number; timeoutMs: number }
  | { op: 'subscribe'; target: string }
  | { op: 'ack'; id: string }
  | { op: 'refuse'; id: string; reason: string };
export type LocalResponse =
  | { ok: true; seq?: number; stats?: unknown; status?: unknown; deadLetters?: unknown[]; requeued?: number; acked?: boolean; refusal?: { code: string; message: string } }
  | { ok: false; code: string; message: string };

export interface LocalSession {
  /** Sends one request; resolves with its response (responses come in request order; pushed lines are skipped). */
  request(req: LocalRequest, timeoutMs?: number): Promise<LocalResponse>;
  close(): void;
}

/**
 * One connection for several requests (`ferry send --wait`: send, then waitAcked). Every request
 * rejects with AGENT_UNREACHABLE if no agent listens, the connection ends, or no answer comes
 * within its `timeoutMs`.
 */
export function localSession(socketPath: string): LocalSession {
  const c = createConnection(socketPath);
  c.setEncoding('utf8');
  const pending: { resolve(r: LocalResponse): void; reject(err: Error): void; timer: NodeJS.Timeout }[] = [];
  let buf = '';
  let failure: Error | null = null;
  const failAll = (err: Error): void => {
    failure ??= err;
    for (const p of pending.splice(0)) {
      clearTimeout(p.timer);
      p.reject(failure);
    }
    c.destroy();
  };
  c.on('data', (chunk: string) => {
    buf += chunk;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let v: Record<string, unknown>;
      try {
        v = JSON.parse(line) as Record<string, unknown>;
      } catch (err) {
        failAll(err as Error);
        return;
      }
      if (!('ok' in v)) continue;
      const p = pending.shift();
      if (!p) continue;
      clearTimeout(p.timer);
      p.resolve(v as LocalResponse);
    }
  });
  c.once('error', (err: NodeJS.ErrnoException) => failAll(new FerryError(ErrorCode.AGENT_UNREACHABLE, `no agent listening on ${socketPath} (${err.code ?? err.message})`, { cause: err })));
  c.once('close', () => failAll(new FerryError(ErrorCode.AGENT_UNREACHABLE, `the agent on ${socketPath} closed the connection`)));
  return {
    request(req, timeoutMs = 10_000) {
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => failAll(new FerryError(ErrorCode.AGENT_UNREACHABLE, `no answer from the agent on ${socketPath} within ${timeoutMs} ms`)), timeoutMs);
        pending.push({ resolve, reject, timer });
        c.write(`${JSON.stringify(req)}\n`);
      });
    },
    close: () => {
      c.end();
    },
  };
}

/** Client side: one request, one response. Throws AGENT_UNREACHABLE if no agent listens. */
export async function localRequest(socketPath: string, req: LocalRequest, timeoutMs = 10_000): Promise<LocalResponse> {
  const s = localSession(socketPath);
  try {
    return await s.request(req, timeoutMs);
  } finally {
    s.close();
  }
}

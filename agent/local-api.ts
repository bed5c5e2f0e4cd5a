import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { unlink } from 'node:fs/promises';
import type { Log } from '../common/log.js';
import { ErrorCode, FerryError, isFerryError } from '../protocol/errors.js';
import { checkPacket, dataDepthMaxDefault, type PacketLimits } from '../protocol/limits.js';
import type { PacketData } from '../protocol/packet.js';

/**
 * The agent's local API: newline-delimited JSON over a Unix socket, for other programs on the
 * device (`ferry send`, scripts). One request per line, one response per line, in order.
 *   {"op":"send","target":"t","data":<JSON>}  ->  {"ok":true,"seq":N}   (after the packet is durable)
 *     optional "ttlMs" (expire if not delivered this long after now) and "priority" (0-255)
 *   {"op":"stats"}                            ->  {"ok":true,"stats":{...}}
 *   {"op":"deadLetters"}                      ->  {"ok":true,"deadLetters":[{packet,code,message}]}
 *   {"op":"requeueDeadLetters"}               ->  {"ok":true,"requeued":N}
 * A failure is {"ok":false,"code":CODE,"message":...}. A line over the limit closes the connection.
 */
export type LocalRequest =
  | { op: 'send'; target: string; data: PacketData; ttlMs?: number; priority?: number }
  | { op: 'stats' }
  | { op: 'deadLetters' }
  | { op: 'requeueDeadLetters' };
export type LocalResponse =
  | { ok: true; seq?: number; stats?: unknown; deadLetters?: unknown[]; requeued?: number }
  | { ok: false; code: string; message: string };

export interface LocalApiHandlers {
  send(target: string, data: PacketData, extra?: { ttlMs?: number; priority?: number }): Promise<number>;
  stats(): unknown;
  deadLetters?(): Promise<unknown[]>;
  requeueDeadLetters?(): Promise<number>;
}

export const localLineBytesMax = 256 * 1024;
const connectionsMax = 64;

export interface LocalApiOptions {
  log: Log;
  dataBytesMax: number;
  /** default protocol/limits.ts dataDepthMaxDefault, the gateway's default too */
  dataDepthMax?: number;
}

export async function startLocalApi(socketPath: string, handlers: LocalApiHandlers, opts: LocalApiOptions): Promise<Server> {
  await removeStaleSocket(socketPath);
  const limits: PacketLimits = { dataBytesMax: opts.dataBytesMax, dataDepthMax: opts.dataDepthMax ?? dataDepthMaxDefault };
  const server = createServer((socket) => serve(socket, handlers, limits));
  server.maxConnections = connectionsMax;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

/** A socket file left by a killed agent refuses connections: remove it. A live one is in use: fail. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  const alive = await new Promise<boolean>((resolve) => {
    const c = createConnection(socketPath);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (alive) throw new Error(`another agent is already listening on ${socketPath}`);
  await unlink(socketPath).catch(() => undefined);
}

function serve(socket: Socket, handlers: LocalApiHandlers, limits: PacketLimits): void {
  let parts: Buffer[] = [];
  let partBytes = 0;
  let chain = Promise.resolve();
  let refused = false;
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk: Buffer) => {
    if (refused) return;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      const end = nl < 0 ? chunk.length : nl;
      parts.push(chunk.subarray(start, end));
      partBytes += end - start;
      if (partBytes > localLineBytesMax) {
        // Refuse the connection: ignore what follows, answer after what is already in progress, close.
        refused = true;
        parts = [];
        chain = chain.then(() => {
          reply(socket, { ok: false, code: ErrorCode.LOCAL_REQUEST_INVALID, message: `request line longer than ${localLineBytesMax} bytes` });
          socket.end();
          setTimeout(() => socket.destroy(), 1000).unref();
        });
        return;
      }
      if (nl < 0) break;
      const line = Buffer.concat(parts, partBytes).toString('utf8');
      parts = [];
      partBytes = 0;
      start = nl + 1;
      // Answer in request order even though sends resolve at different times.
      const answer = handle(line, handlers, limits);
      chain = chain.then(async () => reply(socket, await answer));
    }
    if (parts.length > 0) parts = [Buffer.from(Buffer.concat(parts, partBytes))];
  });
}

async function handle(line: string, handlers: LocalApiHandlers, limits: PacketLimits): Promise<LocalResponse> {
  try {
    let req: unknown;
    try {
      req = JSON.parse(line);
    } catch {
      throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, 'request is not JSON');
    }
    if (typeof req !== 'object' || req === null) throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, 'request must be a JSON object');
    const r = req as Record<string, unknown>;
    if (r.op === 'send') {
      if (!('data' in r)) throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, 'send needs data');
      // The gateway's own rule (same code, same defaults): what it would refuse is refused here, before it is stored.
      checkPacket({ target: r.target, data: r.data }, limits);
      const target = r.target as string;
      const data = r.data as PacketData;
      const extra: { ttlMs?: number; priority?: number } = {};
      if (r.ttlMs !== undefined) extra.ttlMs = checkInt(r.ttlMs, 'ttlMs', 1, 0xffffffff);
      if (r.priority !== undefined) extra.priority = checkInt(r.priority, 'priority', 0, 255);
      return { ok: true, seq: await handlers.send(target, data, extra) };
    }
    if (r.op === 'stats') return { ok: true, stats: handlers.stats() };
    if (r.op === 'deadLetters' && handlers.deadLetters) return { ok: true, deadLetters: await handlers.deadLetters() };
    if (r.op === 'requeueDeadLetters' && handlers.requeueDeadLetters) return { ok: true, requeued: await handlers.requeueDeadLetters() };
    throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, `unknown op ${JSON.stringify(r.op)}`);
  } catch (err) {
    if (isFerryError(err)) return { ok: false, code: err.code, message: err.message };
    return { ok: false, code: ErrorCode.INTERNAL, message: (err as Error).message };
  }
}

function checkInt(v: unknown, name: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, `${name} must be an integer from ${min} to ${max}`);
  }
  return v;
}

function reply(socket: Socket, res: LocalResponse): void {
  if (!socket.destroyed) socket.write(`${JSON.stringify(res)}\n`);
}

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

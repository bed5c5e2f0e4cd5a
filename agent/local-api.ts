import { createConnection, createServer, type Server } from 'node:net';
import { chmod, chown, unlink } from 'node:fs/promises';
import { realClock, type Clock } from '../common/clock.js';
import type { Log } from '../common/log.js';
import { ErrorCode, FerryError, isFerryError } from '../protocol/errors.js';
import { checkPacket, dataDepthMaxDefault, type PacketLimits } from '../protocol/limits.js';
import type { PacketData } from '../protocol/packet.js';
import { refuseReasonCharsMax, type LocalSubscribers, type SubscriberConn } from './downlink/local-subscribers.js';
import { LocalClient, type LocalClientLimits } from './local-client.js';
import { localLineBytesMax, type LocalResponse } from './local-request.js';
import type { SendVerdict } from './ack-waiters.js';

/**
 * The agent's local API: newline-delimited JSON over a Unix socket, for other programs on the
 * device (`ferry send`, `ferry listen`, scripts). Each line is one JSON object in UTF-8, ended by
 * `\n`. Every request line gets exactly one response line, in the order of the requests.
 *   {"op":"send","target":"t","data":<JSON>}  ->  {"ok":true,"seq":N}   (after the packet is durable)
 *     optional "ttlMs" (expire if not delivered this long after now) and "priority" (0-255)
 *   {"op":"stats"}                            ->  {"ok":true,"stats":{...}}
 *   {"op":"status"}                           ->  {"ok":true,"status":{...}}   (agent/status.ts, for `ferry status`)
 *   {"op":"deadLetters"}                      ->  {"ok":true,"deadLetters":[{packet,code,message}]}
 *   {"op":"requeueDeadLetters"}               ->  {"ok":true,"requeued":N}
 *   {"op":"waitAcked","seq":N,"timeoutMs":MS} ->  {"ok":true,"acked":true}   once the gateway acked seq N,
 *     or {"ok":true,"acked":false,"refusal":{"code":C,"message":M}} once it refused it for good (a dead
 *     letter); at once if that happened already; SEND_WAIT_TIMEOUT after MS (agent/ack-waiters.ts)
 * A failure is {"ok":false,"code":CODE,"message":...}. A line over the limit closes the connection.
 * A client that does not read its replies is paused, then ended (agent/local-client.ts).
 *
 * Downlink subscribers (docs/downlink.md, "On the device"; agent/downlink/local-subscribers.ts):
 *   {"op":"subscribe","target":PATTERN}        ->  {"ok":true}
 *     then, at any time after that response, pushed lines (no "ok" key, never a response):
 *     {"message":{"id":ID,"target":T,"data":<JSON>,"ts":MS}}   data bytes as {"base64":"..."}
 *   {"op":"ack","id":ID}                       ->  {"ok":true}      the message is taken
 *   {"op":"refuse","id":ID,"reason":STR}       ->  {"ok":true}      refused (DOWNLINK_REFUSED, STR)
 * An ack or refuse for an ID that awaits no answer from this connection (answered already, timed
 * out, never sent to it) gets {"ok":false,"code":"LOCAL_REQUEST_INVALID",...}. A connection may
 * subscribe several patterns and still send any other request; its subscriptions end with it.
 * A reader tells a pushed line from a response by the absence of "ok" (an error response has a
 * "message" too, a string): responses keep their one-per-request order, pushed lines may come
 * between them.
 *
 * The socket file is created with mode 0660 whatever the umask (only the agent's user and, with
 * `socketGid`, one group may connect: anyone who can connect can submit packets, take downlink
 * messages and requeue dead letters).
 */
export type { LocalRequest, LocalResponse } from './local-request.js';
export { localRequest } from './local-request.js';

export interface LocalApiHandlers {
  send(target: string, data: PacketData, extra?: { ttlMs?: number; priority?: number }): Promise<number>;
  stats(): unknown;
  /** what `ferry status` shows; absent: status is an unknown op */
  status?(): Promise<unknown>;
  deadLetters?(): Promise<unknown[]>;
  requeueDeadLetters?(): Promise<number>;
  /** the gateway's verdict on a seq (agent/ack-waiters.ts); absent: waitAcked is an unknown op */
  waitAcked?(seq: number, timeoutMs: number, cancel?: AbortSignal): Promise<SendVerdict>;
  /** downlink subscribers; absent: subscribe/ack/refuse are unknown ops */
  subscribers?: LocalSubscribers;
}

export { localLineBytesMax };
const connectionsMax = 64;

/** Per client; far above what `ferry send` or a script that reads its answers ever queues. */
export const localClientLimitsDefault: Omit<LocalClientLimits, 'lineBytesMax'> = {
  replyQueueBytesHigh: 256 * 1024,
  replyQueueBytesMax: 4 * 1024 * 1024,
  replyStallMs: 30_000,
  requestsInFlightMax: 64,
};

export const localSocketMode = 0o660;

export interface LocalApiOptions extends Partial<Omit<LocalClientLimits, 'lineBytesMax'>> {
  log: Log;
  dataBytesMax: number;
  /** default protocol/limits.ts dataDepthMaxDefault, the gateway's default too */
  dataDepthMax?: number;
  /** the socket file's group (chown); default: the agent's own group */
  socketGid?: number;
  /** for the reply stall timer (default the real clock) */
  clock?: Clock;
}

export interface LocalApiStats {
  clients: number;
  /** reply bytes waiting for all clients now */
  replyQueueBytes: number;
  /** the most reply bytes ever waiting for one client */
  replyQueueBytesPeak: number;
  /** clients ended for not reading their replies */
  clientsEnded: number;
}

export type LocalApiServer = Server & {
  localStats(): LocalApiStats;
  /** Ends every client connection (subscribers stay connected otherwise, and `close` waits for them). */
  endClients(): void;
};

/** Aborted when the client's connection closes (its waits end then). */
const connectionGone = new WeakMap<object, AbortSignal>();

export async function startLocalApi(socketPath: string, handlers: LocalApiHandlers, opts: LocalApiOptions): Promise<LocalApiServer> {
  await removeStaleSocket(socketPath);
  const limits: PacketLimits = { dataBytesMax: opts.dataBytesMax, dataDepthMax: opts.dataDepthMax ?? dataDepthMaxDefault };
  const clientLimits: LocalClientLimits = {
    lineBytesMax: localLineBytesMax,
    replyQueueBytesHigh: opts.replyQueueBytesHigh ?? localClientLimitsDefault.replyQueueBytesHigh,
    replyQueueBytesMax: opts.replyQueueBytesMax ?? localClientLimitsDefault.replyQueueBytesMax,
    replyStallMs: opts.replyStallMs ?? localClientLimitsDefault.replyStallMs,
    requestsInFlightMax: opts.requestsInFlightMax ?? localClientLimitsDefault.requestsInFlightMax,
  };
  const clients = new Set<LocalClient>();
  let peak = 0;
  let ended = 0;
  const deps = {
    clock: opts.clock ?? realClock,
    log: opts.log,
    handle: (line: string, client: LocalClient) => handle(line, handlers, limits, client),
    lineTooLong: (): LocalResponse => ({ ok: false, code: ErrorCode.LOCAL_REQUEST_INVALID, message: `request line longer than ${localLineBytesMax} bytes` }),
    onQueued: (bytes: number) => { peak = Math.max(peak, bytes); },
    onEnded: () => { ended++; },
  };
  const server = createServer((socket) => {
    const c = new LocalClient(socket, clientLimits, deps);
    clients.add(c);
    const gone = new AbortController();
    connectionGone.set(c, gone.signal);
    socket.once('close', () => {
      clients.delete(c);
      handlers.subscribers?.disconnected(c);
      // A client that went away waits for nothing: its waits give their slots back now, not at their time-out.
      gone.abort();
    });
  });
  server.maxConnections = connectionsMax;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // bind(2) creates the socket file with 0777 minus the umask: narrow the umask for the bind so
    // the file is never more open than 0770, even for a moment; chmod then sets exactly 0660.
    const umask = process.umask(0o007);
    try {
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    } finally {
      process.umask(umask);
    }
  });
  try {
    await chmod(socketPath, localSocketMode);
    if (opts.socketGid !== undefined) await chown(socketPath, process.getuid?.() ?? -1, opts.socketGid);
  } catch (err) {
    server.close();
    throw new FerryError(ErrorCode.CONFIG_INVALID, `cannot set the local API socket ${socketPath} to mode 0660${opts.socketGid !== undefined ? ` and group ${opts.socketGid}` : ''}: ${(err as Error).message}`, { cause: err });
  }
  return Object.assign(server, {
    localStats: (): LocalApiStats => {
      let queued = 0;
      for (const c of clients) queued += c.queuedBytes();
      return { clients: clients.size, replyQueueBytes: queued, replyQueueBytesPeak: peak, clientsEnded: ended };
    },
    endClients: (): void => {
      for (const c of clients) c.destroy();
    },
  });
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

async function handle(line: string, handlers: LocalApiHandlers, limits: PacketLimits, conn: SubscriberConn): Promise<LocalResponse> {
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
    if (r.op === 'status' && handlers.status) return { ok: true, status: await handlers.status() };
    if (r.op === 'deadLetters' && handlers.deadLetters) return { ok: true, deadLetters: await handlers.deadLetters() };
    if (r.op === 'requeueDeadLetters' && handlers.requeueDeadLetters) return { ok: true, requeued: await handlers.requeueDeadLetters() };
    if (r.op === 'waitAcked' && handlers.waitAcked) {
      const v = await handlers.waitAcked(checkInt(r.seq, 'seq', 1, Number.MAX_SAFE_INTEGER), checkInt(r.timeoutMs, 'timeoutMs', 1, 0xffffffff), connectionGone.get(conn));
      return v.acked ? { ok: true, acked: true } : { ok: true, acked: false, refusal: v.refusal };
    }
    const subs = handlers.subscribers;
    if (subs && r.op === 'subscribe') {
      subs.subscribe(conn, r.target);
      return { ok: true };
    }
    if (subs && r.op === 'ack') {
      subs.answer(conn, r.id, { ok: true });
      return { ok: true };
    }
    if (subs && r.op === 'refuse') {
      if (typeof r.reason !== 'string' || r.reason.length === 0) throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, 'refuse needs "reason": a non-empty string');
      subs.answer(conn, r.id, { ok: false, code: ErrorCode.DOWNLINK_REFUSED, reason: r.reason.slice(0, refuseReasonCharsMax) });
      return { ok: true };
    }
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

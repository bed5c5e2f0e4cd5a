/**
 * COUNT idle HTTP long-poll sessions on one gateway's `listen.http` port, opened at RATE
 * sessions/s from ADDRESSES source addresses (127.0.0.1, 127.0.0.2, …, round robin), all over
 * one keep-alive http.Agent, each then kept alive and otherwise silent, like idle-agents does
 * over TCP:
 *   - an opening request (no session, bundle 1, no messages; header `ferry-agent: idle-NNNNN`),
 *     answered at once with the session ID;
 *   - a request carrying HELLO (protocol version from protocol/frames.ts, agent `idle-NNNNN`,
 *     ackedSeq 0), WELCOME expected;
 *   - from then on one request held at the gateway at all times: the next goes when a response
 *     arrives. A PING every `pingIntervalMs` of the WELCOME (else 5 s; the first at a random
 *     point of the interval) and a PONG for every PING go at once in a second request, which
 *     makes the gateway answer the held one: what the agent's RequestPolicy does with a queued
 *     frame (at most 2 outstanding), since the gateway ends a session that is silent for its
 *     peerTimeoutMs and would otherwise hold the request carrying the PING for up to 25 s.
 * Bodies are built and read with protocol/longpoll (BundleChannel, encodeBody/decodeBody), so each
 * request reports what the last response carried. A refusal (HTTP status, JSON {code, message,
 * retryAfterMs?}) before WELCOME with `retryAfterMs` is obeyed: the same agent opens a new session
 * after that delay (counted as a retry); any other refusal, an `end` from the gateway, a BYE or a
 * request error loses the session. Prints a JSON `status` line every second (the fields of
 * idle-agents, plus `requests` and `responses`), `ramped` once every session is welcomed or gone
 * for good, and a last `status` on SIGTERM (then closes every socket and exits).
 * usage: idle-longpoll PORT COUNT RATE ADDRESSES
 */
import { Agent, request } from 'node:http';
import { decodeBody as decodeFrameBody, encodeFrameBody } from '../../protocol/codec.js';
import { FrameType, protocolVersion, type Frame } from '../../protocol/frames.js';
import { BodyKind, bodyLimitsDefault, BundleChannel, channelLimitsDefault, decodeBody, encodeBody, type Body } from '../../protocol/longpoll/index.js';
import { agentHeader, longpollContentType, longpollPath, type RefusalBody } from '../../protocol/longpoll/http.js';
import { fail, intArg } from './common.js';

const [portArg, countArg, rateArg, addressesArg] = process.argv.slice(2);
const port = intArg(portArg, 'PORT');
const count = intArg(countArg, 'COUNT');
const rate = intArg(rateArg, 'RATE');
const addresses = intArg(addressesArg, 'ADDRESSES');
if (addresses > 250) fail('ADDRESSES: at most 250 (127.0.0.1 to 127.0.0.250)');
const defaultPingMs = 5000;
/** requests a session has outstanding at most: one held, one carrying a PING or PONG (the agent's requestsOutstandingMax) */
const outstandingMax = 2;

const c = {
  opened: 0, welcomed: 0, lostAfterWelcome: 0, retries: 0, gone: 0, requests: 0, responses: 0,
  pingsSent: 0, pongsRx: 0, pingsRx: 0, pingIntervalMs: null as number | null,
  byes: {} as Record<string, number>, errors: {} as Record<string, number>,
};
const bump = (m: Record<string, number>, k: string): void => void (m[k] = (m[k] ?? 0) + 1);
const id = (i: number): string => `idle-${String(i).padStart(5, '0')}`;

// One pool; Node keys its sockets by localAddress too, so each source address gets its own.
const agent = new Agent({ keepAlive: true, maxSockets: Infinity });

interface Session {
  i: number;
  channel: BundleChannel;
  session: string | undefined;
  outstanding: number;
  welcomed: boolean;
  done: boolean;
  timer: NodeJS.Timeout | null;
  pingId: number;
}
const live = new Set<Session>();
let stopping = false;

function open(i: number): void {
  c.opened++;
  const s: Session = { i, channel: new BundleChannel(channelLimitsDefault), session: undefined, outstanding: 0, welcomed: false, done: false, timer: null, pingId: 0 };
  live.add(s);
  post(s);
}

/** The session's next request: its next bundle (maybe empty) with its report of the last response. */
function post(s: Session): void {
  const b = s.channel.nextBundle();
  const body = encodeBody({ kind: BodyKind.REQUEST, ...(s.session !== undefined ? { session: s.session } : {}), ...b });
  s.outstanding++;
  c.requests++;
  const req = request({
    agent, host: '127.0.0.1', port, localAddress: `127.0.0.${1 + (s.i % addresses)}`, method: 'POST', path: longpollPath,
    headers: { 'content-type': longpollContentType, 'content-length': body.length, [agentHeader]: id(s.i) },
  }, (res) => {
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.on('end', () => onResponse(s, res.statusCode ?? 0, Buffer.concat(chunks)));
    res.on('error', (err: NodeJS.ErrnoException) => lose(s, `response: ${err.code ?? err.message}`));
  });
  req.on('error', (err: NodeJS.ErrnoException) => lose(s, err.code ?? err.message));
  req.end(body);
}

function onResponse(s: Session, status: number, bytes: Buffer): void {
  s.outstanding--;
  if (s.done) return;
  if (status !== 200) return refused(s, status, bytes);
  c.responses++;
  const opening = s.session === undefined;
  let body: Body;
  let frames: Frame[];
  try {
    body = decodeBody(bytes, BodyKind.RESPONSE, bodyLimitsDefault);
    s.session ??= body.session;
    frames = s.channel.accept(body).map((m) => decodeFrameBody(m));
  } catch (err) {
    return lose(s, `response body: ${(err as Error).message}`);
  }
  for (const f of frames) {
    if (f.t === FrameType.WELCOME) welcome(s, f.pingIntervalMs ?? defaultPingMs);
    else if (f.t === FrameType.PING) {
      c.pingsRx++;
      queue(s, { t: FrameType.PONG, id: f.id });
    } else if (f.t === FrameType.PONG) c.pongsRx++;
    else if (f.t === FrameType.BYE) bump(c.byes, f.code);
  }
  if (body.end !== undefined) return lose(s, `end ${body.end.code}`, false);
  // The opening response named the session: say HELLO in the next request.
  if (opening) s.channel.send(encodeFrameBody({ t: FrameType.HELLO, version: protocolVersion, agent: id(s.i), ackedSeq: 0 }));
  if (s.outstanding === 0) post(s);
}

function welcome(s: Session, intervalMs: number): void {
  if (s.welcomed) return;
  s.welcomed = true;
  c.welcomed++;
  c.pingIntervalMs ??= intervalMs;
  const ping = (): void => {
    c.pingsSent++;
    queue(s, { t: FrameType.PING, id: ++s.pingId, ackedSeq: 0 });
  };
  s.timer = setTimeout(() => {
    ping();
    s.timer = setInterval(ping, intervalMs);
  }, Math.random() * intervalMs);
  if (c.welcomed === count) process.stdout.write(`${JSON.stringify({ t: 'all-welcomed', ...c })}\n`);
}

/** Queues a frame and sends it at once in a second request (the held one is then answered). */
function queue(s: Session, frame: Frame): void {
  s.channel.send(encodeFrameBody(frame));
  if (s.outstanding < outstandingMax) post(s);
}

function refused(s: Session, status: number, bytes: Buffer): void {
  let r: Partial<RefusalBody> = {};
  try {
    r = JSON.parse(bytes.toString('utf8')) as RefusalBody;
  } catch {
    // not JSON: counted by status alone
  }
  const code = `${status} ${r.code ?? '?'}`;
  if (status === 409) {
    // Overtaken by the session's next request on another socket (as the agent does: send again).
    bump(c.errors, code);
    s.channel.resendOutstanding();
    if (s.outstanding === 0) post(s);
    return;
  }
  if (!s.welcomed && typeof r.retryAfterMs === 'number') {
    bump(c.byes, code);
    c.retries++;
    end(s);
    setTimeout(() => !stopping && open(s.i), r.retryAfterMs);
    return;
  }
  lose(s, code);
}

function end(s: Session): void {
  s.done = true;
  live.delete(s);
  if (s.timer) clearTimeout(s.timer);
}

/** The session is over for good: counted by why, and as lost if it had been welcomed. */
function lose(s: Session, why: string, error = true): void {
  if (s.done) return;
  end(s);
  if (stopping) return;
  bump(error ? c.errors : c.byes, why);
  if (s.welcomed) {
    c.welcomed--;
    c.lostAfterWelcome++;
  }
  c.gone++;
}

const status = (t: string): void => void process.stdout.write(`${JSON.stringify({ t, ...c, open: live.size })}\n`);
setInterval(() => status('status'), 1000);
process.once('SIGTERM', () => {
  stopping = true;
  status('status');
  agent.destroy();
  setTimeout(() => process.exit(0), 100);
});

// Open at RATE/s on a 10 ms tick: every session due by now, computed from the start (no drift).
const t0 = Date.now();
let next = 0;
let ramped = false;
const opener = setInterval(() => {
  const due = Math.min(count, Math.floor(((Date.now() - t0) * rate) / 1000) + 1);
  while (next < due) open(next++);
  if (next === count && !ramped && c.welcomed + c.gone === count) {
    ramped = true;
    clearInterval(opener);
    status('ramped');
  }
}, 10);

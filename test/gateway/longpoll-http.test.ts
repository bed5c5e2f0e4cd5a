/**
 * longpoll http - the gateway as composed by gateway/main.ts, with its HTTP long-poll listener on
 * 127.0.0.1, driven by a hand-made agent end (LongPollPeer) over real HTTP: a whole session
 * (HELLO, WELCOME, DATA, ACK, the packet in the route's file), then each bad input the issue
 * names gets its coded status and JSON body, and after each the legit session still delivers.
 * Then the held-request limit (and a client going away freeing its hold) and admission.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { createLog } from '../../common/log.js';
import { AgentRegistry } from '../../gateway/agents.js';
import { gatewayConfigSchema } from '../../gateway/config.js';
import { runGateway } from '../../gateway/main.js';
import { ErrorCode } from '../../protocol/errors.js';
import { FrameType, protocolVersion, type Frame } from '../../protocol/frames.js';
import { BodyKind, encodeBody } from '../../protocol/longpoll/body.js';
import { agentHeader, longpollPath } from '../../protocol/longpoll/http.js';
import { bodyLimitsDefault } from '../../protocol/longpoll/limits.js';
import { makeCerts } from '../helpers/certs.js';
import { sayHello } from '../helpers/hello.js';
import { LongPollPeer, post, type HttpReply } from '../helpers/longpoll-peer.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

async function gateway(t: Test, agents: string[], limits: Record<string, unknown> = {}, listen: Record<string, string> = {}) {
  const dir = t.testdir();
  const dataDir = join(dir, 'gw');
  const registry = await AgentRegistry.open(dataDir, { watchIntervalMs: 0 });
  const tokens: Record<string, string> = {};
  for (const a of agents) tokens[a] = await registry.add(a);
  registry.close();
  const out = join(dir, 'out.jsonl');
  const config = gatewayConfigSchema.parse({
    listen: { http: '127.0.0.1:0', admin: '127.0.0.1:0', ...listen }, dataDir, limits,
    routes: [{ match: '#', handler: 'file', path: out }],
  });
  const lines: string[] = [];
  const gw = await runGateway(config, { log: createLog({ write: (l) => lines.push(l) }) });
  t.teardown(() => gw.stop());
  const seqs = (): number[] => {
    let text = '';
    try {
      text = readFileSync(out, 'utf8');
    } catch {
      return [];
    }
    return text.split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { seq: number }).seq);
  };
  return { gw, port: gw.ports.http!, tokens, seqs, lines };
}

/** One request from `p` with what it has queued; a 200 is read into it. */
async function roundTrip(port: number, p: LongPollPeer): Promise<HttpReply> {
  const r = await post(port, p.request().bytes, { agent: p.agent });
  if (r.status === 200) p.accept(r.body);
  return r;
}

/** Requests until a frame matching `pred` has arrived (each answered within the hold limit). */
async function until(t: Test, port: number, p: LongPollPeer, pred: (f: Frame) => boolean, what: string): Promise<Frame> {
  for (let i = 0; i < 40; i++) {
    const seen = p.frames.find(pred);
    if (seen) return seen;
    const r = await roundTrip(port, p);
    if (r.status !== 200) t.fail(`${what}: a request got ${r.status} ${r.body.toString()}`);
  }
  throw new Error(`${what}: never arrived`);
}

/** Opens a session and says HELLO; resolves with the WELCOME. */
async function connectAgent(t: Test, port: number, agent: string, token: string): Promise<LongPollPeer> {
  const p = new LongPollPeer(agent);
  const opened = await roundTrip(port, p);
  t.equal(opened.status, 200, `${agent}: opening request answered`);
  t.ok(p.session && /^[A-Za-z0-9_-]{22}$/.test(p.session), `${agent}: a 128-bit base64url session ID`);
  p.send({ t: FrameType.HELLO, version: protocolVersion, agent, token, ackedSeq: 0 });
  const first = await until(t, port, p, (f) => f.t === FrameType.WELCOME || f.t === FrameType.BYE, 'WELCOME');
  t.equal(first.t, FrameType.WELCOME, `${agent}: WELCOME over HTTP`);
  return p;
}

/** Sends packet `seq` and waits for the ACK covering it. */
async function deliver(t: Test, port: number, p: LongPollPeer, seq: number, what: string): Promise<void> {
  p.send({ t: FrameType.DATA, packets: [{ seq, target: 'lp/test', ts: 1, data: { n: seq } }] });
  await until(t, port, p, (f) => f.t === FrameType.ACK && f.seq >= seq, `ACK ${seq} ${what}`);
  t.pass(`the session still delivers ${what}`);
}

/** Raw bytes to the listener; resolves with everything it answered before closing (or after `waitMs`). */
function raw(port: number, chunks: (string | Buffer)[], waitMs = 3000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    let closed = false;
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => {
      closed = true;
      resolve({ text, closed });
    });
    for (const c of chunks) s.write(c);
    setTimeout(() => {
      s.destroy();
      resolve({ text, closed });
    }, waitMs).unref();
  });
}

const codeOf = (r: HttpReply): string => r.json().code;

t.test('longpoll http - a whole session over HTTP, then every bad input gets its code and the session goes on', async (t) => {
  const { gw, port, tokens, seqs, lines } = await gateway(t, ['pi-1', 'pi-2'], { longpoll: { holdMs: 500, requestBodyTimeoutMs: 300 } });
  t.ok(lines.some((l) => l.includes('gateway: listening') && l.includes(`"http":"127.0.0.1:${port}"`)), 'the log names the http port');
  const p = await connectAgent(t, port, 'pi-1', tokens['pi-1']!);
  await deliver(t, port, p, 1, 'at first');
  t.same(seqs(), [1], 'the packet reached the route');

  // Unknown (or expired) session.
  const stranger = new LongPollPeer('pi-1');
  stranger.session = 'AAAAAAAAAAAAAAAAAAAAAA';
  const unknown = await roundTrip(port, stranger);
  t.equal(unknown.status, 404);
  t.equal(codeOf(unknown), ErrorCode.LONGPOLL_SESSION_UNKNOWN, 'unknown session');
  await deliver(t, port, p, 2, 'after an unknown session');

  // pi-2 (registered, with its own token) presents pi-1's session ID.
  const stolen = encodeBody({ kind: BodyKind.REQUEST, session: p.session!, bundle: 1000, ack: 0, ranges: [], seen: 0, messages: [] });
  const forbidden = await post(port, stolen, { agent: 'pi-2' });
  t.equal(forbidden.status, 403);
  t.equal(codeOf(forbidden), ErrorCode.LONGPOLL_SESSION_FORBIDDEN, "another agent's session");
  await deliver(t, port, p, 3, "after another agent used its session ID");

  // A replayed request (the same bytes again).
  p.send({ t: FrameType.PING, id: 1 });
  const sent = p.request();
  const firstTime = await post(port, sent.bytes, { agent: 'pi-1' });
  t.equal(firstTime.status, 200);
  p.accept(firstTime.body);
  const replay = await post(port, sent.bytes, { agent: 'pi-1' });
  t.equal(replay.status, 409);
  t.equal(codeOf(replay), ErrorCode.LONGPOLL_REQUEST_STALE, 'a replayed request');
  await deliver(t, port, p, 4, 'after a replay');

  // Out of order: request n+1 overtakes request n.
  const older = p.request();
  const newer = p.request();
  const newerReply = post(port, newer.bytes, { agent: 'pi-1' });
  await new Promise((r) => setTimeout(r, 50));
  const late = await post(port, older.bytes, { agent: 'pi-1' });
  t.equal(late.status, 409);
  t.equal(codeOf(late), ErrorCode.LONGPOLL_REQUEST_STALE, 'an out-of-order request');
  const nr = await newerReply;
  t.equal(nr.status, 200, 'the newer one is answered');
  p.accept(nr.body);
  await deliver(t, port, p, 5, 'after an out-of-order request');

  // Oversize: declared, then streamed without a length.
  const declared = await raw(port, [`POST ${longpollPath} HTTP/1.1\r\nhost: x\r\ncontent-type: application/cbor\r\n${agentHeader}: pi-1\r\ncontent-length: ${bodyLimitsDefault.bodyBytesMax + 1}\r\n\r\n`, Buffer.alloc(1000)]);
  t.match(declared.text, /^HTTP\/1\.1 413 /, 'a Content-Length over bodyBytesMax: 413 before the body is read');
  t.match(declared.text, /LONGPOLL_BODY_TOO_LARGE/);
  const streamed = await new Promise<number>((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: longpollPath, method: 'POST', agent: false, headers: { 'content-type': 'application/cbor', [agentHeader]: 'pi-1', 'transfer-encoding': 'chunked' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(-1));
    const chunk = Buffer.alloc(256 * 1024, 0xa0);
    for (let sentBytes = 0; sentBytes <= bodyLimitsDefault.bodyBytesMax; sentBytes += chunk.length) req.write(chunk);
    req.end();
  });
  t.equal(streamed, 413, 'a streamed body past bodyBytesMax: 413');
  await deliver(t, port, p, 6, 'after oversize bodies');

  // Garbage.
  const garbage = await post(port, Buffer.from('\xff\x00 not cbor at all'), { agent: 'pi-1' });
  t.equal(garbage.status, 400);
  t.equal(codeOf(garbage), ErrorCode.LONGPOLL_BODY_INVALID, 'a garbage body');
  const wrongKind = await post(port, encodeBody({ kind: BodyKind.RESPONSE, session: p.session!, bundle: 9999, answers: 1, ack: 0, ranges: [], seen: 0, messages: [] }), { agent: 'pi-1' });
  t.equal(codeOf(wrongKind), ErrorCode.LONGPOLL_BODY_INVALID, 'a response body sent as a request');
  await deliver(t, port, p, 7, 'after garbage');

  // A slow sender: headers, part of the body, then nothing.
  const slow = await raw(port, [`POST ${longpollPath} HTTP/1.1\r\nhost: x\r\ncontent-type: application/cbor\r\n${agentHeader}: pi-1\r\ncontent-length: 100\r\n\r\n`, Buffer.alloc(10)]);
  t.match(slow.text, /^HTTP\/1\.1 408 /, 'a body not received within requestBodyTimeoutMs: 408');
  t.match(slow.text, /LONGPOLL_REQUEST_TIMEOUT/);
  t.ok(slow.closed, 'and the connection is closed');
  await deliver(t, port, p, 8, 'after a slow sender');

  // Not a long-poll request at all.
  t.equal((await post(port, Buffer.from('x'), { agent: 'pi-1', path: '/' })).status, 404, 'another path: 404');
  const get = await new Promise<HttpReply>((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: longpollPath, method: 'GET', agent: false }, (res) => {
      const c: Buffer[] = [];
      res.on('data', (d: Buffer) => c.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(c), json: () => JSON.parse(Buffer.concat(c).toString()) }));
    }).on('error', reject).end();
  });
  t.equal(get.status, 405, 'GET: 405');
  t.equal(codeOf(get), ErrorCode.LONGPOLL_NOT_A_REQUEST);
  const text = await post(port, Buffer.from('x'), { agent: 'pi-1', contentType: 'text/plain' });
  t.equal(text.status, 415, 'another content type: 415');
  t.equal(codeOf(text), ErrorCode.LONGPOLL_NOT_A_REQUEST);
  await deliver(t, port, p, 9, 'after requests that are not long-poll requests');

  t.same(seqs(), [1, 2, 3, 4, 5, 6, 7, 8, 9], 'every packet reached the route exactly once, in order');
  const s = gw.stats().longpoll!;
  t.equal(s.sessions, 1, 'one session');
  for (const code of [ErrorCode.LONGPOLL_SESSION_UNKNOWN, ErrorCode.LONGPOLL_SESSION_FORBIDDEN, ErrorCode.LONGPOLL_REQUEST_STALE, ErrorCode.LONGPOLL_BODY_TOO_LARGE, ErrorCode.LONGPOLL_BODY_INVALID, ErrorCode.LONGPOLL_REQUEST_TIMEOUT, ErrorCode.LONGPOLL_NOT_A_REQUEST]) {
    t.ok((s.refused[code] ?? 0) >= 1, `${code} counted in stats`);
  }
});

t.test('longpoll http - held requests count against heldRequestsMax (503 with Retry-After); a client going away frees its hold', async (t) => {
  const { port, tokens, gw } = await gateway(t, ['pi-1', 'pi-2'], { longpoll: { holdMs: 5000, heldRequestsMax: 1 } });
  const a = await connectAgent(t, port, 'pi-1', tokens['pi-1']!);
  const b = new LongPollPeer('pi-2');
  t.equal((await roundTrip(port, b)).status, 200, 'opening requests are never held, so never refused for it');
  const abort = new AbortController();
  const heldA = post(port, a.request().bytes, { agent: 'pi-1', signal: abort.signal }).catch((err: Error) => err);
  await new Promise((r) => setTimeout(r, 200));
  t.equal(gw.stats().longpoll?.heldRequests, 1, "pi-1's request is held");
  b.send({ t: FrameType.HELLO, version: protocolVersion, agent: 'pi-2', token: tokens['pi-2']!, ackedSeq: 0 });
  const busy = await post(port, b.request().bytes, { agent: 'pi-2' });
  t.equal(busy.status, 503);
  t.equal(codeOf(busy), ErrorCode.GATEWAY_BUSY, 'past heldRequestsMax');
  t.match(busy.headers['retry-after'], /^\d+$/, 'with a Retry-After header');
  t.ok(busy.json().retryAfterMs! >= 1000, 'and retryAfterMs in the body');
  abort.abort();
  t.type(await heldA, Error, "pi-1's client went away");
  await new Promise((r) => setTimeout(r, 200));
  t.equal(gw.stats().longpoll?.heldRequests, 0, 'its hold is freed');
  // Nothing of a refused request is applied: pi-2 sends its HELLO again, and now it gets through.
  b.channel.resendOutstanding();
  const welcome = await until(t, port, b, (f) => f.t === FrameType.WELCOME || f.t === FrameType.BYE, 'WELCOME for pi-2');
  t.equal(welcome.t, FrameType.WELCOME, 'pi-2 gets its session going once the hold is free');
});

t.test('longpoll http - admission: sessions share connectionsPerAddressMax with the TCP listener; the per-address request rate', async (t) => {
  const { port, gw } = await gateway(t, ['pi-1', 'pi-2'], { connectionsPerAddressMax: 1, longpoll: { requestsPerAddressPerSecondMax: 20 } }, { tcp: '127.0.0.1:0' });
  const a = new LongPollPeer('pi-1');
  t.equal((await roundTrip(port, a)).status, 200, 'the first session from 127.0.0.1 is admitted');
  const second = await roundTrip(port, new LongPollPeer('pi-2'));
  t.equal(second.status, 429);
  t.equal(codeOf(second), ErrorCode.CONNECTIONS_PER_ADDRESS, 'a second session from the address is refused');
  const tcp = await sayHello(t, `tcp://127.0.0.1:${gw.ports.tcp}`, { agent: 'pi-2' });
  t.equal(tcp.first?.t === FrameType.BYE ? tcp.first.code : 'no BYE', ErrorCode.CONNECTIONS_PER_ADDRESS, 'and so is a TCP connection: one admission for both');
  const codes: number[] = [];
  for (let i = 0; i < 40; i++) codes.push((await post(port, Buffer.from('junk'), { agent: 'pi-1' })).status);
  const refused = codes.filter((c) => c === 503).length;
  t.ok(refused > 0, `past requestsPerAddressPerSecondMax requests get 503 (${refused} of 40)`);
  t.ok(codes.slice(0, 15).every((c) => c === 400), 'the first ones, within the burst, were read (400 for junk)');
});

t.test("longpoll http - a request held past node's request time-out is still answered at holdMs (the time-outs bound receiving, not holding)", async (t) => {
  // requestTimeout here: 300 + 300 + 1000 ms, checked every second; the hold is longer than both together.
  const { port, tokens } = await gateway(t, ['pi-1'], { longpoll: { holdMs: 3500, headersTimeoutMs: 300, requestBodyTimeoutMs: 300 } });
  const p = await connectAgent(t, port, 'pi-1', tokens['pi-1']!);
  const r = await post(port, p.request().bytes, { agent: 'pi-1' });
  t.equal(r.status, 200, 'the held request is answered, not cut');
  t.same(p.accept(r.body).frames, [], 'empty, at the hold limit');
});

t.test('longpoll http - over HTTPS a verified client certificate authenticates, and a session answers only to the certificate it opened with', async (t) => {
  const dir = t.testdir();
  const certs = makeCerts(dir);
  const config = gatewayConfigSchema.parse({
    listen: { https: '127.0.0.1:0', admin: '127.0.0.1:0' }, dataDir: join(dir, 'gw'), limits: { longpoll: { holdMs: 500 } },
    tls: { cert: certs.main.gateway.cert, key: certs.main.gateway.key, ca: certs.main.ca },
    routes: [{ match: '#', handler: 'file', path: join(dir, 'out.jsonl') }],
  });
  const gw = await runGateway(config, { log: createLog({ write: () => undefined }) });
  t.teardown(() => gw.stop());
  const port = gw.ports.https!;
  const postTls = (body: Uint8Array, agent: string, cn: string): Promise<HttpReply> => new Promise((resolve, reject) => {
    const c = certs.main.client(cn);
    httpsRequest({
      host: '127.0.0.1', port, path: longpollPath, method: 'POST', agent: false, ca: readFileSync(certs.main.ca), cert: readFileSync(c.cert), key: readFileSync(c.key),
      headers: { 'content-type': 'application/cbor', [agentHeader]: agent, 'content-length': body.length },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), json: () => JSON.parse(Buffer.concat(chunks).toString()) }));
    }).on('error', reject).end(body);
  });
  const p = new LongPollPeer('pi-cert');
  const opened = await postTls(p.request().bytes, 'pi-cert', 'pi-cert');
  t.equal(opened.status, 200, 'opened over HTTPS');
  p.accept(opened.body);
  p.send({ t: FrameType.HELLO, version: protocolVersion, agent: 'pi-cert', ackedSeq: 0 });
  const hello = p.request();
  const other = await postTls(hello.bytes, 'pi-cert', 'pi-other');
  t.equal(other.status, 403);
  t.equal(codeOf(other), ErrorCode.LONGPOLL_SESSION_FORBIDDEN, 'the same agent header with another certificate');
  const r = await postTls(hello.bytes, 'pi-cert', 'pi-cert');
  t.equal(r.status, 200);
  t.equal(p.accept(r.body).frames[0]?.t, FrameType.WELCOME, 'WELCOME without a token: the certificate authenticated the agent');
});

/**
 * The long-poll client over real HTTP: longPollDialer with httpPost against a node:http(s) server
 * on 127.0.0.1 that plays a small gateway side (a BundleChannel and ChannelTransport per session,
 * the hold policy with a short hold, answers at once on a new request), straight and through a
 * real tinyproxy by HTTPS_PROXY (CONNECT). Frames go both ways in order, each once; a held request
 * waits for the gateway's frames; closing sends `end` and the session ends at the server.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { httpPost } from '../../agent/link/http-post.js';
import { longPollDialer, newLongPollCounters } from '../../agent/link/longpoll-client.js';
import { realClock } from '../../common/clock.js';
import { silentLog } from '../../common/log.js';
import { FrameType, type Frame } from '../../protocol/frames.js';
import { BodyKind, decodeBody, encodeBody, type Body } from '../../protocol/longpoll/body.js';
import { BundleChannel } from '../../protocol/longpoll/channel.js';
import { ChannelTransport } from '../../protocol/longpoll/channel-transport.js';
import { HoldPolicy, RequestOrder, requestOrder } from '../../protocol/longpoll/hold-policy.js';
import { bodyLimitsDefault, channelLimitsDefault } from '../../protocol/longpoll/limits.js';
import { makeCerts } from '../helpers/certs.js';
import { startTinyproxy } from '../helpers/tinyproxy.js';
import { until } from '../helpers/wait.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

interface Held {
  res: ServerResponse;
  bundle: number;
}

/** One session at the test server: answers every PING with a PONG of the same id. */
class ServerSession {
  readonly channel = new BundleChannel(channelLimitsDefault);
  readonly transport: ChannelTransport;
  readonly hold = new HoldPolicy<Held>({ holdMs: 2000, lingerMs: 5 });
  readonly pings: number[] = [];
  highestTaken = 1;
  timer: NodeJS.Timeout | undefined;
  ended = false;

  constructor(readonly id: string) {
    this.transport = new ChannelTransport(this.channel, { onSendable: () => this.pump(), onClose: () => (this.ended = true) });
    this.transport.onFrame((f) => {
      if (f.t !== FrameType.PING) return;
      this.pings.push(f.id);
      this.transport.send({ t: FrameType.PONG, id: f.id });
    });
  }

  answer(h: Held | undefined): void {
    if (h === undefined) return;
    h.res.writeHead(200, { 'content-type': 'application/cbor' });
    h.res.end(encodeBody({ kind: BodyKind.RESPONSE, session: this.id, answers: h.bundle, ...this.channel.nextBundle() }));
  }

  pump(): void {
    while (this.hold.held !== undefined && this.channel.hasFullBundle()) this.answer(this.hold.bundleReady());
    if (this.channel.stats().sendableMessages > 0) this.answer(this.hold.messagesWaiting(Date.now()));
    clearTimeout(this.timer);
    const due = this.hold.deadlineMs();
    if (due !== undefined) this.timer = setTimeout(() => { this.answer(this.hold.tick(Date.now())); this.pump(); }, Math.max(0, due - Date.now()));
  }

  request(body: Body, res: ServerResponse): void {
    const order = requestOrder(this.highestTaken, body.bundle);
    this.transport.deliver(this.channel.accept(body));
    if (body.end) {
      this.transport.peerEnded(body.end);
      this.answer(this.hold.close());
      this.answer({ res, bundle: body.bundle });
      clearTimeout(this.timer);
      return;
    }
    if (order === RequestOrder.DUPLICATE || order === RequestOrder.STALE) {
      res.writeHead(409, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: 'LONGPOLL_REQUEST_STALE', message: 'stale' }));
      return;
    }
    this.highestTaken = body.bundle;
    for (const h of this.hold.request({ res, bundle: body.bundle }, Date.now(), this.channel.hasFullBundle())) this.answer(h);
    this.pump();
  }
}

async function gatewayServer(t: Test, tls?: { cert: Buffer; key: Buffer }) {
  const sessions = new Map<string, ServerSession>();
  const agents: string[] = [];
  let requests = 0;
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests++;
      agents.push(String(req.headers['ferry-agent']));
      const body = decodeBody(Buffer.concat(chunks), BodyKind.REQUEST, bodyLimitsDefault);
      if (body.session === undefined) {
        const s = new ServerSession(`s${sessions.size + 1}`);
        sessions.set(s.id, s);
        s.channel.accept(body);
        s.answer({ res, bundle: body.bundle });
        return;
      }
      const s = sessions.get(body.session);
      if (s === undefined || s.ended) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ code: 'LONGPOLL_SESSION_UNKNOWN', message: 'no such session' }));
        return;
      }
      s.request(body, res);
    });
  };
  const server: Server = tls ? createHttpsServer(tls, handler) : createHttpServer(handler);
  const sockets = new Set<import('node:net').Socket>();
  server.on(tls ? 'secureConnection' : 'connection', (s: import('node:net').Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  t.teardown(() => {
    for (const s of sessions.values()) clearTimeout(s.timer);
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as { port: number }).port, sessions, agents, get requests() { return requests; } };
}

async function exercise(t: Test, url: string, gw: Awaited<ReturnType<typeof gatewayServer>>, post: ReturnType<typeof httpPost>): Promise<void> {
  t.teardown(() => post.close());
  const counters = newLongPollCounters();
  const dial = longPollDialer({ post, agentId: 'pi-9', clock: realClock, log: silentLog, counters });
  const tr = await dial();
  const got: Frame[] = [];
  tr.onFrame((f) => got.push(f));
  const n = 500;
  for (let i = 1; i <= n; i++) {
    tr.send({ t: FrameType.PING, id: i });
    if (i % 50 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  await until(() => got.length >= n, `${n} PONGs back over ${url}`, 20_000);
  const s = gw.sessions.get('s1')!;
  t.same(s.pings, Array.from({ length: n }, (_, i) => i + 1), 'the server got PING 1..n once each, in order');
  t.same(got.map((f) => (f as { id: number }).id), Array.from({ length: n }, (_, i) => i + 1), 'the agent got PONG 1..n once each, in order');
  t.ok(gw.agents.every((a) => a === 'pi-9'), 'every request named the agent');
  t.ok(counters.requests < n / 2, `bundled: ${counters.requests} requests for ${n} frames each way`);
  // Idle: one request held at the server; a frame from the server goes out at once on it.
  await new Promise((r) => setTimeout(r, 50));
  t.equal(s.hold.held !== undefined, true, 'a request waits at the server');
  s.transport.send({ t: FrameType.PONG, id: 9999 });
  await until(() => got.length === n + 1, 'the pushed PONG', 5000);
  tr.close();
  await until(() => s.ended, 'the server session ended by end', 5000);
  t.ok(s.ended, 'closing sent end and the server session ended');
}

t.test('longpoll over http - frames both ways in order, a held request, end on close', async (t) => {
  const gw = await gatewayServer(t);
  const url = `http://127.0.0.1:${gw.port}`;
  await exercise(t, url, gw, httpPost(url, { agentId: 'pi-9' }));
});

t.test('longpoll over https through HTTPS_PROXY (tinyproxy CONNECT)', async (t) => {
  const certs = makeCerts(t.testdir({}));
  const gw = await gatewayServer(t, { cert: readFileSync(certs.main.gateway.cert), key: readFileSync(certs.main.gateway.key) });
  const proxy = await startTinyproxy({ connectPorts: [gw.port] });
  t.teardown(() => proxy.stop());
  const url = `https://127.0.0.1:${gw.port}`;
  const post = httpPost(url, { agentId: 'pi-9', env: { HTTPS_PROXY: proxy.url }, tls: { ca: readFileSync(certs.main.ca) } });
  t.equal(post.proxyUrl?.origin, proxy.url);
  await exercise(t, url, gw, post);
  t.match(proxy.log(), new RegExp(`CONNECT 127\\.0\\.0\\.1:${gw.port}`), 'the proxy log shows the CONNECT tunnels');
});

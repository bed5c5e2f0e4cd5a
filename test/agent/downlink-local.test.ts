/**
 * The `local` downlink consumer (agent/downlink/local-subscribers.ts) through the agent's real
 * local API on a real Unix socket, with raw clients that speak the documented framing: ack,
 * refuse, no subscriber, a subscriber that goes away, the time-out, two subscribers, bad lines.
 */
import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DownlinkMessage } from '../../agent/downlink/consumer.js';
import { LocalSubscribers } from '../../agent/downlink/local-subscribers.js';
import { startLocalApi } from '../../agent/local-api.js';
import { realClock } from '../../common/clock.js';
import { silentLog } from '../../common/log.js';
import type { PacketData } from '../../protocol/packet.js';
import { pollUntil } from '../helpers/wait.js';

const msg = (id: string, target = 'cmd/led', data: PacketData = { on: true }): DownlinkMessage => ({ id, target, data, ts: 1_700_000_000_123 });

interface Client {
  lines: Record<string, unknown>[];
  send(req: object | string): void;
  /** waits for the line number `n` (0-based) and returns it */
  line(n: number): Promise<Record<string, unknown>>;
  /** the pushed messages so far */
  messages(): Record<string, unknown>[];
  closed: Promise<void>;
  end(): void;
}

async function rig(t: Test, send: () => Promise<number> = async () => 1): Promise<{ subs: LocalSubscribers; connect(): Promise<Client>; subscribe(pattern: string): Promise<Client> }> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-sub-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'agent.sock');
  const subs = new LocalSubscribers({ clock: realClock, log: silentLog });
  const server = await startLocalApi(path, { send, stats: () => ({}), subscribers: subs }, { log: silentLog, dataBytesMax: 1024 });
  t.teardown(() => {
    const closed = new Promise<void>((r) => server.close(() => r()));
    server.endClients();
    return closed;
  });
  const connect = async (): Promise<Client> => {
    const c: Socket = createConnection(path);
    await new Promise<void>((resolve, reject) => c.once('connect', resolve).once('error', reject));
    const lines: Record<string, unknown>[] = [];
    let buf = '';
    c.setEncoding('utf8');
    c.on('data', (s: string) => {
      buf += s;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        lines.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
        buf = buf.slice(nl + 1);
      }
    });
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    t.teardown(() => void c.destroy());
    return {
      lines,
      send: (req) => void c.write(typeof req === 'string' ? req : `${JSON.stringify(req)}\n`),
      line: async (n) => {
        await pollUntil(() => lines.length > n, 5000, `line ${n}`);
        return lines[n]!;
      },
      messages: () => lines.filter((l) => 'message' in l).map((l) => l.message as Record<string, unknown>),
      closed,
      end: () => void c.destroy(),
    };
  };
  const subscribe = async (pattern: string): Promise<Client> => {
    const c = await connect();
    c.send({ op: 'subscribe', target: pattern });
    t.same(await c.line(0), { ok: true }, `subscribed to ${pattern}`);
    return c;
  };
  return { subs, connect, subscribe };
}

t.test('local - a subscriber gets the message as one pushed line and acks it', async (t) => {
  const { subs, subscribe } = await rig(t);
  const c = await subscribe('cmd/#');
  const v = subs.consumer(5000).deliver(msg('m-1'));
  t.same(await c.line(1), { message: { id: 'm-1', target: 'cmd/led', data: { on: true }, ts: 1_700_000_000_123 } });
  c.send({ op: 'ack', id: 'm-1' });
  t.same(await v, { ok: true });
  t.same(await c.line(2), { ok: true }, 'the ack is answered like any request');
  t.same(subs.stats(), { subscriptions: 1, awaiting: 0 });
});

t.test('local - bytes go as {"base64":...}; a refusal carries its reason', async (t) => {
  const { subs, subscribe } = await rig(t);
  const c = await subscribe('blob');
  const v = subs.consumer(5000).deliver(msg('m-2', 'blob', new Uint8Array([0, 1, 255])));
  t.same(await c.line(1), { message: { id: 'm-2', target: 'blob', data: { base64: 'AAH/' }, ts: 1_700_000_000_123 } });
  c.send({ op: 'refuse', id: 'm-2', reason: 'busy printing' });
  t.same(await v, { ok: false, code: 'DOWNLINK_REFUSED', reason: 'busy printing' });
});

t.test('local - no subscriber whose pattern matches: DOWNLINK_NO_CONSUMER at once', async (t) => {
  const { subs, subscribe } = await rig(t);
  const c = await subscribe('other/#');
  t.match(await subs.consumer(5000).deliver(msg('m-3')), { ok: false, code: 'DOWNLINK_NO_CONSUMER', reason: /no local subscriber for target cmd\/led/ });
  t.same(c.messages(), [], 'the non-matching subscriber got nothing');
});

t.test('local - no answer within timeoutMs: DOWNLINK_TIMEOUT; a late ack is refused as unknown', async (t) => {
  const { subs, subscribe } = await rig(t);
  const c = await subscribe('cmd/+');
  t.match(await subs.consumer(200).deliver(msg('m-4')), { ok: false, code: 'DOWNLINK_TIMEOUT' });
  t.same(c.messages().map((m) => m.id), ['m-4'], 'it was pushed');
  c.send({ op: 'ack', id: 'm-4' });
  t.match(await c.line(2), { ok: false, code: 'LOCAL_REQUEST_INVALID', message: /awaits no answer/ });
});

t.test('local - the oldest subscription gets the message; when it goes away before answering, the next one does', async (t) => {
  const { subs, subscribe } = await rig(t);
  const a = await subscribe('cmd/#');
  const b = await subscribe('cmd/led');
  const v = subs.consumer(5000).deliver(msg('m-5'));
  await a.line(1);
  t.same(b.messages(), [], 'only one subscriber at a time');
  a.end();
  t.same(await b.line(1), { message: { id: 'm-5', target: 'cmd/led', data: { on: true }, ts: 1_700_000_000_123 } }, 'handed to the next');
  b.send({ op: 'ack', id: 'm-5' });
  t.same(await v, { ok: true });
  // The one that went away holds no subscription any more.
  await pollUntil(() => subs.stats().subscriptions === 1, 5000, 'the closed subscriber to be dropped');
  const w = subs.consumer(5000).deliver(msg('m-6'));
  t.same((await b.line(3)).message, { id: 'm-6', target: 'cmd/led', data: { on: true }, ts: 1_700_000_000_123 });
  b.send({ op: 'ack', id: 'm-6' });
  t.same(await w, { ok: true });
});

t.test('local - every subscriber goes away before answering: DOWNLINK_NO_CONSUMER', async (t) => {
  const { subs, subscribe } = await rig(t);
  const a = await subscribe('cmd/#');
  const v = subs.consumer(5000).deliver(msg('m-7'));
  await a.line(1);
  a.end();
  t.match(await v, { ok: false, code: 'DOWNLINK_NO_CONSUMER', reason: /went away/ });
});

t.test('local - two subscribers with different patterns each get their own targets', async (t) => {
  const { subs, subscribe } = await rig(t);
  const leds = await subscribe('cmd/led');
  const cfg = await subscribe('cfg/*');
  const consumer = subs.consumer(5000);
  const v1 = consumer.deliver(msg('m-8', 'cfg/interval', 200));
  t.same((await cfg.line(1)).message, { id: 'm-8', target: 'cfg/interval', data: 200, ts: 1_700_000_000_123 });
  cfg.send({ op: 'ack', id: 'm-8' });
  t.same(await v1, { ok: true });
  const v2 = consumer.deliver(msg('m-9'));
  t.same(((await leds.line(1)).message as { id: string }).id, 'm-9');
  leds.send({ op: 'ack', id: 'm-9' });
  t.same(await v2, { ok: true });
  t.same(cfg.messages().map((m) => m.id), ['m-8']);
  t.same(leds.messages().map((m) => m.id), ['m-9']);
});

t.test('local - an ack from another connection does not answer a message handed to this one', async (t) => {
  const { subs, subscribe, connect } = await rig(t);
  const a = await subscribe('cmd/#');
  const other = await connect();
  const v = subs.consumer(5000).deliver(msg('m-10'));
  await a.line(1);
  other.send({ op: 'ack', id: 'm-10' });
  t.match(await other.line(0), { ok: false, code: 'LOCAL_REQUEST_INVALID' });
  a.send({ op: 'refuse', id: 'm-10', reason: 'no' });
  t.same(await v, { ok: false, code: 'DOWNLINK_REFUSED', reason: 'no' }, 'only its own subscriber answers it');
});

t.test('local - bad lines from a subscriber get LOCAL_REQUEST_INVALID, in order, and the subscription holds', async (t) => {
  const { subs, subscribe, connect } = await rig(t);
  const c = await subscribe('cmd/#');
  c.send('not json\n');
  c.send({ op: 'subscribe', target: 'a/#/b' });
  c.send({ op: 'subscribe' });
  c.send({ op: 'ack' });
  c.send({ op: 'refuse', id: 'x' });
  c.send({ op: 'ack', id: 'never-sent' });
  c.send({ op: 'stats' });
  await c.line(7);
  t.match(c.lines.slice(1, 8), [
    { ok: false, code: 'LOCAL_REQUEST_INVALID', message: 'request is not JSON' },
    { ok: false, code: 'LOCAL_REQUEST_INVALID', message: /invalid target pattern/ },
    { ok: false, code: 'LOCAL_REQUEST_INVALID', message: /needs "target"/ },
    { ok: false, code: 'LOCAL_REQUEST_INVALID', message: /needs "id"/ },
    { ok: false, code: 'LOCAL_REQUEST_INVALID', message: /needs "reason"/ },
    { ok: false, code: 'LOCAL_REQUEST_INVALID', message: /awaits no answer/ },
    { ok: true, stats: {} },
  ]);
  const v = subs.consumer(5000).deliver(msg('m-11'));
  t.same(((await c.line(8)).message as { id: string }).id, 'm-11', 'still subscribed');
  c.send({ op: 'ack', id: 'm-11' });
  t.same(await v, { ok: true });
  // Without a subscription, ack is an ordinary bad request, and other clients are not disturbed.
  const plain = await connect();
  plain.send({ op: 'ack', id: 'm-11' });
  t.match(await plain.line(0), { ok: false, code: 'LOCAL_REQUEST_INVALID' });
});

t.test('local - responses keep request order: a message pushed while earlier responses wait comes after them', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const { subs, connect } = await rig(t, async () => {
    await gate;
    return 7;
  });
  const c = await connect();
  // A send that waits (not durable yet), then a subscribe handled at once behind it.
  c.send({ op: 'send', target: 'a', data: 1 });
  c.send({ op: 'subscribe', target: '#' });
  await pollUntil(() => subs.stats().subscriptions === 1, 5000, 'the subscription');
  const v = subs.consumer(5000).deliver(msg('m-12'));
  release();
  t.same(await c.line(0), { ok: true, seq: 7 }, 'the send\'s response first');
  t.same(await c.line(1), { ok: true }, 'then the subscribe\'s');
  t.same(((await c.line(2)).message as { id: string }).id, 'm-12', 'then the message');
  c.send({ op: 'ack', id: 'm-12' });
  t.same(await v, { ok: true });
});

t.test('local - a subscriber that closes ends its subscriptions; the API without subscribers knows no subscribe', async (t) => {
  const { subs, subscribe } = await rig(t);
  const c = await subscribe('#');
  c.send({ op: 'subscribe', target: 'x' });
  await c.line(1);
  t.equal(subs.stats().subscriptions, 2, 'two on one connection');
  c.end();
  await pollUntil(() => subs.stats().subscriptions === 0, 5000, 'both to go');
  const dir = await mkdtemp(join(tmpdir(), 'ferry-sub-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const server = await startLocalApi(join(dir, 's'), { send: async () => 1, stats: () => ({}) }, { log: silentLog, dataBytesMax: 1024 });
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const raw = createConnection(join(dir, 's'));
  t.teardown(() => void raw.destroy());
  raw.write('{"op":"subscribe","target":"#"}\n');
  const line = await new Promise<string>((r) => raw.setEncoding('utf8').once('data', r));
  t.match(JSON.parse(line), { ok: false, code: 'LOCAL_REQUEST_INVALID', message: /unknown op "subscribe"/ });
});

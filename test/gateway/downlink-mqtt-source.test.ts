/**
 * The downlink MQTT subscription in this process against a real mosquitto, with an in-memory
 * queue: messages queued in order with their agent, target, data and ttl; bad ones dropped and
 * acknowledged without wedging the subscription; QoS 2; a failed write not acknowledged and
 * queued once the write works; the persistent session keeping what was published while the
 * subscriber was away; reconnecting after the broker restarts. A real gateway process is in
 * test/gateway/downlink-mqtt.test.ts.
 */
import t from 'tap';
import { connectAsync, type MqttClient } from 'mqtt';
import { MqttSource } from '../../gateway/downlink/mqtt-source.js';
import { LogSummary } from '../../gateway/log-summary.js';
import { createLog } from '../../common/log.js';
import { realClock } from '../../common/clock.js';
import { ErrorCode } from '../../protocol/errors.js';
import { MemoryDownlink } from '../helpers/memory-downlink.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { waitFor } from '../helpers/ferry.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

async function broker(t: Test, opts: Parameters<typeof startMosquitto>[0] = {}): Promise<Mosquitto> {
  const m = await startMosquitto(opts);
  t.teardown(() => m.stop());
  return m;
}

function source(t: Test, url: string, queues: MemoryDownlink, opts: { clientId?: string; qos?: 1 | 2; known?: (a: string) => boolean } = {}): { src: MqttSource; lines: string[] } {
  const lines: string[] = [];
  const log = createLog({ write: (l) => lines.push(l) });
  const summary = new LogSummary({ log, clock: realClock, intervalMs: 60_000 });
  const src = new MqttSource({
    url, topic: 'ferry/down/{agent}/#', qos: opts.qos ?? 1, clientId: opts.clientId ?? `dl-${process.pid}-${Math.random().toString(36).slice(2)}`,
    queues, agentKnown: opts.known ?? (() => true), limits: { messageBytesMax: 1024, dataDepthMax: 8 },
    log, summary, clock: realClock, rng: Math.random, reconnectDelayMsMin: 50, reconnectDelayMsMax: 500,
  });
  t.teardown(async () => {
    await src.close(500);
    summary.close();
  });
  return { src, lines };
}

async function publisher(t: Test, url: string): Promise<MqttClient> {
  const c = await connectAsync(url, { protocolVersion: 5, clientId: `pub-${Math.random().toString(36).slice(2)}` });
  t.teardown(() => c.endAsync(true));
  return c;
}

const subscribed = (src: MqttSource): Promise<true> => waitFor('the subscription', async () => (src.stats().connected ? true : undefined));

t.test('mqtt source - messages queued in order, with agent, target, data and ttl; bad ones dropped without wedging', async (t) => {
  const m = await broker(t);
  const queues = new MemoryDownlink();
  const { src, lines } = source(t, m.url, queues, { known: (a) => a !== 'ghost' });
  await subscribed(src);
  const pub = await publisher(t, m.url);
  // The SUBACK may trail the CONNACK: publish a probe until it arrives.
  await waitFor('the subscription to take messages', async () => {
    await pub.publishAsync('ferry/down/probe/p', '0', { qos: 1 });
    return queues.list('probe').length > 0 ? true : undefined;
  });
  const sends: [string, string | Buffer, object?][] = [
    ['ferry/down/pi-1/cfg/interval', '{"ms":200}'],
    ['ferry/down/pi-1', '1'], // no target
    ['ferry/down/ghost/x', '1'], // an agent the gateway does not know
    ['ferry/down/pi-1/big', Buffer.alloc(2000)], // over messageBytesMax
    ['ferry/down/pi-1/cmd', 'reboot now'],
    ['ferry/down/pi-2/x', '[1,2]', { properties: { messageExpiryInterval: 60 } }],
    ['ferry/down/pi-1/last', '"done"'],
  ];
  for (const [tp, payload, extra] of sends) await pub.publishAsync(tp, payload, { qos: 1, ...extra });
  await waitFor('the last message', async () => (queues.list('pi-1').some((x) => x.target === 'last') ? true : undefined));
  const pi1 = queues.list('pi-1');
  t.same(pi1.map((x) => x.target), ['cfg/interval', 'cmd', 'last'], 'in order; the bad ones are not queued');
  t.same(pi1[0]!.data, { ms: 200 });
  t.same(Buffer.from(pi1[1]!.data as Uint8Array).toString(), 'reboot now', 'not JSON: bytes');
  t.equal(pi1[2]!.from, 'mqtt');
  const pi2 = queues.list('pi-2');
  t.same(pi2[0]!.data, [1, 2]);
  t.ok(pi2[0]!.expiresAt !== undefined && pi2[0]!.expiresAt - pi2[0]!.queuedAt > 55_000 && pi2[0]!.expiresAt - pi2[0]!.queuedAt <= 60_000, 'expiry interval → ttl');
  t.equal(queues.list('ghost').length, 0);
  t.same(src.stats().refused, { [ErrorCode.API_BODY_INVALID]: 1, [ErrorCode.API_AGENT_UNKNOWN]: 1, [ErrorCode.API_BODY_TOO_LARGE]: 1 });
  t.ok(lines.some((l) => /downlink mqtt: message dropped/.test(l) && l.includes('API_AGENT_UNKNOWN')), 'logged with its code');
});

t.test('mqtt source - QoS 2 messages are queued once each', async (t) => {
  const m = await broker(t);
  const queues = new MemoryDownlink();
  const { src } = source(t, m.url, queues, { qos: 2 });
  await subscribed(src);
  const pub = await publisher(t, m.url);
  await waitFor('the subscription to take messages', async () => {
    await pub.publishAsync('ferry/down/probe/p', '0', { qos: 2 });
    return queues.list('probe').length > 0 ? true : undefined;
  });
  for (let i = 0; i < 20; i++) await pub.publishAsync('ferry/down/pi-1/n', String(i), { qos: 2 });
  await waitFor('20 messages', async () => (queues.list('pi-1').length >= 20 ? true : undefined));
  t.same(queues.list('pi-1').map((x) => x.data), Array.from({ length: 20 }, (_, i) => i), 'each once, in order');
});

t.test('mqtt source - a failed write is not acknowledged: the broker sends it again and it is queued once writes work', async (t) => {
  const m = await broker(t);
  const queues = new MemoryDownlink();
  const { src, lines } = source(t, m.url, queues);
  await subscribed(src);
  const pub = await publisher(t, m.url);
  await waitFor('the subscription to take messages', async () => {
    await pub.publishAsync('ferry/down/probe/p', '0', { qos: 1 });
    return queues.list('probe').length > 0 ? true : undefined;
  });
  queues.failWith = new Error('EIO: i/o error');
  await pub.publishAsync('ferry/down/pi-1/a', '1', { qos: 1 });
  await pub.publishAsync('ferry/down/pi-1/b', '2', { qos: 1 });
  await waitFor('a failed write', async () => (src.stats().storeFailures > 0 ? true : undefined));
  t.equal(queues.list('pi-1').length, 0);
  queues.failWith = undefined;
  await waitFor('both messages queued after the reconnect', async () => (queues.list('pi-1').length >= 2 ? true : undefined));
  await new Promise((r) => setTimeout(r, 300));
  t.same(queues.list('pi-1').map((x) => x.target), ['a', 'b'], 'each once, in order');
  t.ok(src.stats().connects >= 2, 'it reconnected');
  t.ok(lines.some((l) => /could not be queued; not acknowledged/.test(l)));
});

t.test('mqtt source - the persistent session keeps what is published while the gateway is away; the broker restarting is survived', async (t) => {
  const persistDir = t.testdir();
  const m = await broker(t, { persistDir });
  const queues = new MemoryDownlink();
  const clientId = `dl-persist-${process.pid}`;
  const first = source(t, m.url, queues, { clientId });
  await subscribed(first.src);
  const pub = await publisher(t, m.url);
  await waitFor('the subscription to take messages', async () => {
    await pub.publishAsync('ferry/down/probe/p', '0', { qos: 1 });
    return queues.list('probe').length > 0 ? true : undefined;
  });
  await first.src.close();
  for (let i = 0; i < 5; i++) await pub.publishAsync('ferry/down/pi-1/away', String(i), { qos: 1 });
  const second = source(t, m.url, queues, { clientId });
  await waitFor('what was published while away', async () => (queues.list('pi-1').length >= 5 ? true : undefined));
  t.same(queues.list('pi-1').map((x) => x.data), [0, 1, 2, 3, 4]);

  // The broker restarts (SIGTERM saves its sessions): the source reconnects and carries on.
  await m.stop();
  const again = await broker(t, { persistDir, port: m.port });
  await waitFor('the reconnect', async () => (second.src.stats().connects >= 2 && second.src.stats().connected ? true : undefined));
  const pub2 = await publisher(t, again.url);
  await waitFor('a message after the restart', async () => {
    await pub2.publishAsync('ferry/down/pi-9/after', '1', { qos: 1 });
    return queues.list('pi-9').length > 0 ? true : undefined;
  });
  t.pass('messages flow after the broker restarted');
});

t.test('mqtt source - a broker down at start is retried with back-off until it is up; close does not wait for a broker that is gone', async (t) => {
  const { freePort } = await import('../helpers/free-port.js');
  const port = await freePort();
  const queues = new MemoryDownlink();
  const { src, lines } = source(t, `mqtt://127.0.0.1:${port}`, queues);
  await waitFor('a failed attempt logged', async () => (lines.some((l) => /downlink mqtt: connection failed/.test(l)) ? true : undefined));
  t.equal(src.stats().connected, false);
  const m = await broker(t, { port });
  await subscribed(src);
  const pub = await publisher(t, m.url);
  await waitFor('a message once the broker is up', async () => {
    await pub.publishAsync('ferry/down/pi-1/x', '1', { qos: 1 });
    return queues.list('pi-1').length > 0 ? true : undefined;
  });
  m.kill();
  await waitFor('the loss noticed', async () => (src.stats().connected ? undefined : true));
  const started = Date.now();
  // A liveness check, not a timing one: with a grace of a minute, only waiting for the gone broker takes that long.
  await src.close(60_000);
  t.ok(Date.now() - started < 30_000, `closed in ${Date.now() - started} ms with the broker gone, not after its grace`);
});

t.test('mqtt source - a retained message is not replayed when the gateway subscribes (an old command would run again after every reconnect)', async (t) => {
  const m = await broker(t);
  const pub = await publisher(t, m.url);
  await pub.publishAsync('ferry/down/pi-9/cmd', 'reboot', { qos: 1, retain: true });
  const queues = new MemoryDownlink();
  const { src } = source(t, m.url, queues);
  await subscribed(src);
  // A message published after the subscription arrives; the retained one before it never does.
  await waitFor('a message published after the subscription', async () => {
    await pub.publishAsync('ferry/down/pi-9/after', '1', { qos: 1 });
    return queues.list('pi-9').some((x) => x.target === 'after') ? true : undefined;
  });
  t.same(queues.list('pi-9').filter((x) => x.target === 'cmd'), [], 'the retained command was not queued');
});

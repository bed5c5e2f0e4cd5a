/**
 * Issue 10, case 1, at the handler: nothing in one packet may take down the mqtt handler's one
 * shared connection. mosquitto ends the connection (not just the publish) for a topic or user
 * property outside MQTT's UTF-8 rule, a wildcard in a published topic, and a packet over its
 * Maximum Packet Size; the handler must refuse those itself, permanently. A publish the broker
 * refuses in its PUBACK (an ACL) is a permanent HANDLER_REJECTED, not a retry forever.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as mqttConnect, connectAsync, type IClientOptions, type IClientPublishOptions, type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import type { DispatchPacket, HandlerResult } from '../../gateway/handlers/handler.js';
import { createMqttHandler, publishPacketBytes, type MqttHandler, type MqttHandlerOptions } from '../../gateway/handlers/mqtt.js';
import { ErrorCode } from '../../protocol/errors.js';
import { freePort } from '../helpers/free-port.js';
import { findMosquitto, startMosquitto } from '../helpers/mosquitto.js';
import { pollUntil } from '../helpers/wait.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

function pkt(agent: string, seq: number, target: string, data: DispatchPacket['data'] = { seq }): DispatchPacket {
  return { agent, seq, target, ts: 1_700_000_000_000 + seq, data };
}

/** A handler whose client's connections are counted: a second connect means the first was lost. */
function countedHandler(t: Test, opts: MqttHandlerOptions): { handler: MqttHandler; connects: () => number } {
  let connects = 0;
  const connect = (url: string, clientOpts: IClientOptions): MqttClient => {
    const client = mqttConnect(url, clientOpts);
    client.on('connect', () => connects++);
    return client;
  };
  const handler = createMqttHandler({ reconnectPeriodMs: 100, publishTimeoutMs: 2000, ...opts }, { connect });
  t.teardown(() => handler.close());
  return { handler, connects: () => connects };
}

async function topicsAt(t: Test, url: string): Promise<string[]> {
  const sub = await connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0 });
  t.teardown(() => sub.endAsync(true));
  const topics: string[] = [];
  sub.on('message', (topic) => topics.push(topic));
  await sub.subscribeAsync('#', { qos: 1 });
  return topics;
}

function permanent(t: Test, r: HandlerResult, code: string, what: string): void {
  t.same(r.ok ? r : { ok: r.ok, retryable: r.retryable, code: r.code }, { ok: false, retryable: false, code }, `${what} (${r.ok ? 'ok' : r.message})`);
}

/** A private mosquitto with extra config lines (the shared helper has none); stopped at teardown. */
async function mosquittoWith(t: Test, lines: string[], files: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-mosq-ids-'));
  const port = await freePort();
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  const conf = [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'set_tcp_nodelay true', 'persistence false', ...lines.map((l) => l.replaceAll('{dir}', dir))];
  if (process.getuid?.() === 0) conf.push('user root');
  await writeFile(join(dir, 'mosquitto.conf'), conf.join('\n') + '\n');
  const child = spawn(findMosquitto(), ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  t.teardown(async () => {
    if (child.exitCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    }
    await rm(dir, { recursive: true, force: true });
  });
  const up = (): Promise<boolean> =>
    new Promise((resolve) => {
      const s = netConnect({ port, host: '127.0.0.1' });
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
  const deadline = Date.now() + 5000;
  while (!(await up())) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`mosquitto with ${lines.join('; ')} did not start`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return `mqtt://127.0.0.1:${port}`;
}

t.test('mqtt handler - IDs and topics mosquitto would take as malformed are refused before publishing; the connection stays up', async (t) => {
  const b = await startMosquitto();
  t.teardown(() => b.stop());
  const topics = await topicsAt(t, b.url);
  const { handler, connects } = countedHandler(t, { url: b.url, topic: 'ferry/{agent}/{target}' });
  const bad: [string, string, string][] = [
    ['pi-1', 'x\uffff', 'noncharacter U+FFFF in the target'],
    ['pi-1', 'x\ufdd0', 'noncharacter U+FDD0'],
    ['pi-1', 'x\u{1fffe}', 'noncharacter U+1FFFE'],
    ['pi-1', 'x\u0085', 'C1 control U+0085'],
    ['pi-1', 'x\ud800', 'lone surrogate'],
    ['pi-\uffff', 'ok', 'noncharacter in the agent ID (a user property and a topic level)'],
    ['pi-1', 'a/+', 'wildcard'],
  ];
  let seq = 0;
  for (const [agent, target, what] of bad) {
    const r = await handler.handle(pkt(agent, ++seq, target));
    permanent(t, r, ErrorCode.HANDLER_FAILED, what);
    t.same(await handler.handle(pkt('pi-1', ++seq, 'after')), { ok: true }, `a normal packet right after (${what})`);
  }
  const { handler: dollar } = countedHandler(t, { url: b.url, topic: '{target}' });
  permanent(t, await dollar.handle(pkt('pi-1', ++seq, '$SYS/x')), ErrorCode.HANDLER_FAILED, 'a topic in the broker\'s $ namespace');
  t.throws(() => createMqttHandler({ url: b.url, topic: 'ferry/\uffff/{target}' }), { code: ErrorCode.CONFIG_INVALID }, 'a template with a noncharacter fails at creation');
  await pollUntil(() => topics.length >= bad.length, 5000, 'the normal packets at the subscriber');
  t.equal(connects(), 1, 'the handler never lost its connection');
  t.ok(topics.every((x) => x === 'ferry/pi-1/after'), 'only the normal packets reached the broker');
});

t.test('mqtt handler - a packet over the broker\'s Maximum Packet Size is refused, not sent; the connection stays up', async (t) => {
  const url = await mosquittoWith(t, ['max_packet_size 2000']);
  const topics = await topicsAt(t, url);
  const { handler, connects } = countedHandler(t, { url, topic: 'ferry/{agent}/{target}' });
  t.same(await handler.handle(pkt('pi-1', 1, 'small', 'x'.repeat(100))), { ok: true }, 'a small packet');
  const r = await handler.handle(pkt('pi-1', 2, 'big', 'x'.repeat(5000)));
  permanent(t, r, ErrorCode.HANDLER_FAILED, 'a 5000-byte payload against a 2000-byte maximum');
  t.match(r.ok ? '' : r.message, /at most 2000/, 'the message names the broker\'s maximum');
  t.same(await handler.handle(pkt('pi-1', 3, 'small', 'x'.repeat(100))), { ok: true }, 'a small packet after');
  await pollUntil(() => topics.length >= 2, 5000, 'the two small packets');
  t.equal(connects(), 1, 'the handler never lost its connection');
});

t.test('mqtt handler - a publish the broker refuses in its PUBACK (not authorized) is a permanent HANDLER_REJECTED', async (t) => {
  const url = await mosquittoWith(t, ['acl_file {dir}/acl'], { acl: 'topic readwrite ferry/ok/#\ntopic read #\n' });
  const { handler, connects } = countedHandler(t, { url, topic: 'ferry/{target}' });
  t.same(await handler.handle(pkt('pi-1', 1, 'ok/a')), { ok: true }, 'an allowed topic');
  permanent(t, await handler.handle(pkt('pi-1', 2, 'denied/a')), ErrorCode.HANDLER_REJECTED, 'a topic the ACL denies');
  t.same(await handler.handle(pkt('pi-1', 3, 'ok/a')), { ok: true }, 'an allowed topic after');
  t.equal(connects(), 1, 'the handler never lost its connection');
});

t.test('mqtt handler - publishPacketBytes is the size mqtt-packet writes', async (t) => {
  const cases: { topic: string; payload: number; qos: 0 | 1 | 2; props: NonNullable<IClientPublishOptions['properties']> }[] = [
    { topic: 'a', payload: 0, qos: 0, props: {} },
    { topic: 'ferry/pi-7/telemetry/temp', payload: 120, qos: 1, props: { userProperties: { 'ferry-agent': 'pi-7', 'ferry-seq': '12', 'ferry-target': 'télé/🌡', 'ferry-ts': '1700000000000' }, contentType: 'application/json', payloadFormatIndicator: true } },
    { topic: 'x'.repeat(300), payload: 20_000, qos: 2, props: { userProperties: { k: 'v' } } },
    { topic: 'y', payload: 3_000_000, qos: 1, props: {} },
  ];
  for (const c of cases) {
    const written = mqttPacket.generate({ cmd: 'publish', topic: c.topic, payload: Buffer.alloc(c.payload), qos: c.qos, messageId: c.qos > 0 ? 7 : undefined, dup: false, retain: false, properties: c.props } as mqttPacket.IPublishPacket, { protocolVersion: 5 });
    t.equal(publishPacketBytes(c.topic, c.payload, { qos: c.qos, properties: c.props }), written.length, `topic of ${c.topic.length}, payload of ${c.payload}, qos ${c.qos}`);
  }
});

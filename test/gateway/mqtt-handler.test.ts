import t from 'tap';
import { connect as mqttConnect, connectAsync, type IClientOptions, type IPublishPacket, type MqttClient, type Packet as MqttPacket } from 'mqtt';
import type { DispatchPacket, HandlerResult } from '../../gateway/handlers/handler.js';
import { createMqttHandler, type MqttHandler, type MqttHandlerOptions } from '../../gateway/handlers/mqtt.js';
import type { PacketData } from '../../protocol/packet.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { pollUntil } from '../helpers/wait.js';

/** A subtest, as `t.test` hands it to its callback (the last overload of t.test is `(cb)`). */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

interface Received {
  topic: string;
  payload: Buffer;
  properties: IPublishPacket['properties'];
}

/** What the handler's own client put on and took off the wire. */
interface Wire {
  client(): MqttClient;
  /** ferry-seq of every PUBLISH written to the socket, in order */
  publishedSeqs: string[];
  pubacks: number;
  /** most PUBLISHes written and not yet PUBACKed at any moment */
  outstandingMax: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}


/** Resolves what `p` resolves, or rejects if it does not settle within `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

async function broker(t: Test, port?: number): Promise<Mosquitto> {
  const b = await startMosquitto(port === undefined ? {} : { port });
  t.teardown(() => b.stop());
  return b;
}

async function subscribe(t: Test, url: string, filter: string): Promise<Received[]> {
  const client = await connectAsync(url, { protocolVersion: 5, clean: true, reconnectPeriod: 0 });
  t.teardown(() => client.endAsync(true));
  const received: Received[] = [];
  client.on('message', (topic, payload, packet) => received.push({ topic, payload: Buffer.from(payload), properties: packet.properties }));
  await client.subscribeAsync(filter, { qos: 1 });
  return received;
}

function watchedHandler(t: Test, opts: MqttHandlerOptions): { handler: MqttHandler; wire: Wire } {
  let captured: MqttClient | undefined;
  const wire: Wire = {
    client: () => captured!,
    publishedSeqs: [],
    pubacks: 0,
    outstandingMax: 0,
  };
  let outstanding = 0;
  const connect = (url: string, clientOpts: IClientOptions): MqttClient => {
    const client = mqttConnect(url, clientOpts);
    client.on('packetsend', (p: MqttPacket) => {
      if (p.cmd !== 'publish') return;
      const seq = p.properties?.userProperties?.['ferry-seq'];
      wire.publishedSeqs.push(String(seq));
      outstanding++;
      wire.outstandingMax = Math.max(wire.outstandingMax, outstanding);
    });
    client.on('packetreceive', (p: MqttPacket) => {
      if (p.cmd !== 'puback') return;
      wire.pubacks++;
      outstanding--;
    });
    client.on('close', () => {
      outstanding = 0;
    });
    captured = client;
    return client;
  };
  const handler = createMqttHandler(opts, { connect });
  t.teardown(() => handler.close());
  return { handler, wire };
}

function pkt(agent: string, seq: number, target: string, data: PacketData): DispatchPacket {
  return { agent, seq, target, ts: 1_700_000_000_000 + seq, data };
}

/** JSON data for even seqs; bytes (a view at an offset into a larger buffer) for odd ones. */
function dataFor(seq: number): PacketData {
  if (seq % 2 === 0) return { seq, temp: seq / 10, tags: ['a', 'ü'], nested: { ok: true, none: null } };
  const backing = new Uint8Array(8 + (seq % 7));
  for (let i = 0; i < backing.length; i++) backing[i] = (seq * 31 + i * 7) & 0xff;
  return backing.subarray(3);
}

function expectRetryable(t: Test, r: HandlerResult, what: string): void {
  t.equal(r.ok, false, `${what}: not ok`);
  if (r.ok) return;
  t.equal(r.retryable, true, `${what}: retryable`);
  t.equal(r.code, 'HANDLER_FAILED', `${what}: code`);
  if (r.retryable) t.equal(r.retryAfterMs, 1000, `${what}: retryAfterMs`);
}

function expectPermanent(t: Test, r: HandlerResult, what: string): void {
  t.equal(r.ok, false, `${what}: not ok`);
  if (r.ok) return;
  t.equal(r.retryable, false, `${what}: permanent`);
  t.equal(r.code, 'HANDLER_FAILED', `${what}: code`);
  t.match(r.message, /wildcard/, `${what}: message names the wildcard`);
}

/** Offers `p` again and again, as the agent would, until it is accepted; every refusal must be retryable. */
async function handleUntilOk(t: Test, handler: MqttHandler, p: DispatchPacket, ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  let refusals = 0;
  for (;;) {
    const r = await handler.handle(p);
    if (r.ok) return refusals;
    if (!r.retryable) throw new Error(`permanent failure while the broker restarts: ${r.message}`);
    refusals++;
    if (Date.now() > deadline) throw new Error(`handler did not recover within ${ms} ms: ${r.message}`);
    await sleep(50);
  }
}

t.test('mqtt handler - publishes with user properties and acks after PUBACK', async (t) => {
  const b = await broker(t);
  const received = await subscribe(t, b.url, 'ferry/#');
  const { handler, wire } = watchedHandler(t, { url: b.url, topic: 'ferry/{agent}/{target}' });
  t.equal(handler.kind, 'mqtt');

  const agents = [
    { agent: 'pi-7', target: 'telemetry/temp' },
    { agent: 'pi-8', target: 'events/door/front' },
  ];
  const perAgent = 100;
  let resolvedOk = 0;
  let resolvedBeforePuback = 0;
  const failures: HandlerResult[] = [];
  // The gateway calls handle one at a time per agent; two agents run side by side.
  await Promise.all(
    agents.map(async ({ agent, target }) => {
      for (let seq = 1; seq <= perAgent; seq++) {
        const r = await handler.handle(pkt(agent, seq, target, dataFor(seq)));
        if (!r.ok) failures.push(r);
        else if (++resolvedOk > wire.pubacks) resolvedBeforePuback++;
      }
    }),
  );
  t.same(failures, [], 'every publish succeeded');
  t.equal(resolvedOk, 200);
  t.equal(resolvedBeforePuback, 0, 'no handle resolved ok before its PUBACK arrived');

  await pollUntil(() => received.length >= 200, 10_000, '200 messages at the subscriber');
  await sleep(300); // room for a duplicate to show up
  t.equal(received.length, 200, 'exactly 200 messages, no duplicates');

  const seen = new Map<string, number>();
  let wrong = 0;
  for (const m of received) {
    const props = m.properties?.userProperties ?? {};
    const agent = String(props['ferry-agent']);
    const seq = Number(props['ferry-seq']);
    seen.set(`${agent}/${seq}`, (seen.get(`${agent}/${seq}`) ?? 0) + 1);
    const spec = agents.find((a) => a.agent === agent);
    if (spec === undefined) {
      wrong++;
      continue;
    }
    const data = dataFor(seq);
    const expected = {
      topic: `ferry/${agent}/${spec.target}`,
      payload: data instanceof Uint8Array ? Buffer.from(data).toString('hex') : Buffer.from(JSON.stringify(data)).toString('hex'),
      userProperties: { 'ferry-agent': agent, 'ferry-seq': String(seq), 'ferry-target': spec.target, 'ferry-ts': String(1_700_000_000_000 + seq) },
      contentType: data instanceof Uint8Array ? undefined : 'application/json',
    };
    const actual = { topic: m.topic, payload: m.payload.toString('hex'), userProperties: props, contentType: m.properties?.contentType };
    if (JSON.stringify(actual) !== JSON.stringify(expected)) {
      wrong++;
      if (wrong <= 3) t.same(actual, expected, `message ${agent}/${seq} as published`);
    }
  }
  t.equal(wrong, 0, 'every message has its topic, payload, user properties and content type');
  t.equal(seen.size, 200, 'every (agent, seq) arrived');
  t.ok([...seen.values()].every((n) => n === 1), 'each exactly once');
  const json = received.find((m) => m.properties?.userProperties?.['ferry-seq'] === '2');
  t.same(JSON.parse(json!.payload.toString('utf8')), dataFor(2), 'JSON data arrives as its JSON text');

  await handler.close();
  t.equal(handler.status, 'closed');
  expectRetryable(t, await handler.handle(pkt('pi-7', 101, 'telemetry/temp', 1)), 'handle after close');
});

t.test('mqtt handler - broker down gives a retryable failure and recovers after a restart', async (t) => {
  const first = await broker(t);
  const opts = { url: first.url, topic: 'ferry/{agent}/{target}', publishTimeoutMs: 400, connectTimeoutMs: 500, reconnectPeriodMs: 100 };
  const { handler } = watchedHandler(t, opts);
  t.same(await handler.handle(pkt('pi-7', 1, 'telemetry/temp', 1)), { ok: true }, 'publishes while the broker is up');

  await first.stop();
  // Offered at once (the loss may not be noticed yet) and again once the handler knows.
  const right = await within(handler.handle(pkt('pi-7', 2, 'telemetry/temp', 2)), 3000, 'handle right after the broker stopped');
  expectRetryable(t, right, 'handle right after the broker stopped');
  await pollUntil(() => handler.status === 'disconnected', 3000, 'the handler to notice the broker is gone');
  for (let i = 0; i < 3; i++) {
    const r = await within(handler.handle(pkt('pi-7', 2, 'telemetry/temp', 2)), 3000, 'handle while the broker is down');
    expectRetryable(t, r, `handle while the broker is down (${i + 1})`);
  }
  await sleep(300); // several reconnect attempts fail meanwhile; none may throw

  const second = await broker(t, first.port);
  const received = await subscribe(t, second.url, 'ferry/#');
  await handleUntilOk(t, handler, pkt('pi-7', 2, 'telemetry/temp', 2), 10_000);
  t.equal(handler.status, 'connected');
  t.same(await handler.handle(pkt('pi-7', 3, 'telemetry/temp', 3)), { ok: true }, 'the next packet goes straight through');
  await pollUntil(() => received.length >= 2, 5000, 'both packets at the subscriber');
  t.same(
    received.map((m) => m.properties?.userProperties?.['ferry-seq']),
    ['2', '3'],
    'the restarted broker got seq 2 and 3',
  );
});

t.test('mqtt handler - a publish the broker does not acknowledge times out and is not sent again', async (t) => {
  const first = await broker(t);
  const { handler, wire } = watchedHandler(t, { url: first.url, topic: 'ferry/{target}', publishTimeoutMs: 300, connectTimeoutMs: 500, reconnectPeriodMs: 100 });
  t.same(await handler.handle(pkt('pi-7', 1, 'telemetry/temp', 1)), { ok: true });

  process.kill(first.pid, 'SIGSTOP'); // the connection stays open, nothing answers
  const r = await within(handler.handle(pkt('pi-7', 2, 'telemetry/temp', 2)), 3000, 'handle against a frozen broker');
  expectRetryable(t, r, 'publish without PUBACK');
  t.match(r.ok ? '' : r.message, /timed out/, 'the message says it timed out');
  t.equal(handler.inflight, 0, 'the timed-out publish no longer counts as in flight');
  t.same(Object.keys(wire.client().outgoing), [], 'mqtt.js holds nothing to resend');

  first.kill();
  await first.stop();
  const second = await broker(t, first.port);
  await handleUntilOk(t, handler, pkt('pi-7', 3, 'telemetry/temp', 3), 10_000);
  t.same(wire.publishedSeqs.filter((s) => s === '2'), ['2'], 'seq 2 went on the wire once: mqtt.js did not resend it after reconnecting');
  await second.stop();
});

t.test('mqtt handler - a topic with a wildcard is a permanent failure', async (t) => {
  const b = await broker(t);
  const received = await subscribe(t, b.url, '#');
  const { handler, wire } = watchedHandler(t, { url: b.url, topic: 'ferry/{agent}/{target}' });
  expectPermanent(t, await handler.handle(pkt('pi-7', 1, 'sensors/+/temp', 1)), '+ in the target');
  expectPermanent(t, await handler.handle(pkt('pi-7', 2, 'sensors/#', 2)), '# in the target');
  expectPermanent(t, await handler.handle(pkt('pi#7', 3, 'sensors/temp', 3)), '# in the agent');
  t.throws(() => createMqttHandler({ url: b.url, topic: 'ferry/#/{target}' }), { code: 'CONFIG_INVALID' }, '# in the template is refused when the handler is made');

  // The same handler still publishes a valid topic, and the refused ones never reached the broker.
  t.same(await handler.handle(pkt('pi-7', 5, 'sensors/temp', 5)), { ok: true });
  t.same(wire.publishedSeqs, ['5'], 'only the valid packet was published');
  await pollUntil(() => received.length >= 1, 5000, 'the valid packet at the subscriber');
  await sleep(100);
  t.same(received.map((m) => m.topic), ['ferry/pi-7/sensors/temp']);
});

t.test('mqtt handler - keeps at most inflightMax publishes un-acknowledged', async (t) => {
  const b = await broker(t);
  const received = await subscribe(t, b.url, 'ferry/#');
  const { handler, wire } = watchedHandler(t, { url: b.url, topic: 'ferry/{target}', inflightMax: 3 });
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => handler.handle(pkt(`pi-${i}`, i + 1, 'load', i))));
  t.ok(results.every((r) => r.ok), 'all 30 succeed');
  t.equal(wire.outstandingMax, 3, 'never more than 3 PUBLISHes waited for their PUBACK');
  await pollUntil(() => received.length >= 30, 5000, '30 messages at the subscriber');
});

import t from 'tap';
import { connect as mqttConnect, connectAsync, type IClientOptions, type MqttClient, type Packet as MqttPacket } from 'mqtt';
import type { DispatchPacket, HandlerResult } from '../../gateway/handlers/handler.js';
import { createMqttHandler, type MqttHandler, type MqttHandlerOptions } from '../../gateway/handlers/mqtt.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { pollUntil } from '../helpers/wait.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A broker keeping its state in `dataDir`: restarted on the same port and dir, as a supervisor restarts a crashed one. */
async function broker(t: Test, dataDir: string, port?: number): Promise<Mosquitto> {
  const b = await startMosquitto({ persistDir: dataDir, ...(port !== undefined && { port }) });
  t.teardown(() => b.stop());
  return b;
}

/** SIGKILL (a crash: the kernel closes the sockets, no goodbye), and wait until the port is free again. */
async function crash(b: Mosquitto): Promise<void> {
  b.kill();
  await b.stop();
}

/** What the handler's client sent and got back: ok must only ever follow a PUBACK of that seq. */
interface Wire {
  client(): MqttClient;
  published: string[];
  acked: Set<string>;
}

function watchedHandler(t: Test, opts: MqttHandlerOptions): { handler: MqttHandler; wire: Wire } {
  let captured: MqttClient | undefined;
  const wire: Wire = { client: () => captured!, published: [], acked: new Set() };
  const seqById = new Map<number, string>();
  const handler = createMqttHandler(opts, {
    connect: (url: string, clientOpts: IClientOptions) => {
      const client = mqttConnect(url, clientOpts);
      client.on('packetsend', (p: MqttPacket) => {
        if (p.cmd !== 'publish') return;
        const seq = String(p.properties?.userProperties?.['ferry-seq']);
        wire.published.push(seq);
        if (p.messageId !== undefined) seqById.set(p.messageId, seq);
      });
      client.on('packetreceive', (p: MqttPacket) => {
        if (p.cmd === 'puback' && p.messageId !== undefined && (p.reasonCode ?? 0) < 0x80) wire.acked.add(seqById.get(p.messageId)!);
      });
      captured = client;
      return client;
    },
  });
  t.teardown(() => handler.close());
  return { handler, wire };
}

function pkt(seq: number): DispatchPacket {
  return { agent: 'pi-9', seq, target: 'telemetry/temp', ts: 1_700_000_000_000 + seq, data: { seq } };
}

/** Resolves what `p` resolves, or rejects if it does not settle within `ms` (a guard against hanging). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}


function expectRetryable(t: Test, r: HandlerResult, what: string): void {
  t.ok(!r.ok && r.retryable && r.code === 'HANDLER_FAILED', `${what}: retryable HANDLER_FAILED (${r.ok ? 'ok' : r.message})`);
}

/** Every seq a handle call resolved ok for was PUBACKed by the broker. */
function okOnlyAfterPuback(t: Test, results: Map<number, HandlerResult>, wire: Wire): void {
  const unacked = [...results].filter(([, r]) => r.ok).map(([seq]) => String(seq)).filter((s) => !wire.acked.has(s));
  t.same(unacked, [], 'no handle resolved ok for a publish the broker did not PUBACK');
}

const publishTimeoutMs = 1500;
const opts = (url: string): MqttHandlerOptions => ({ url, topic: 'ferry/{agent}/{target}', publishTimeoutMs, connectTimeoutMs: 500, reconnectPeriodMs: 100 });

t.test('mqtt handler restart - a killed broker fails in-flight and new publishes retryably; after a restart on the same port and data dir it reconnects by itself', async (t) => {
  const dataDir = t.testdir();
  const first = await broker(t, dataDir);
  const { handler, wire } = watchedHandler(t, opts(first.url));
  const results = new Map<number, HandlerResult>();
  const record = async (seq: number, what: string): Promise<HandlerResult> => {
    const r = await within(handler.handle(pkt(seq)), publishTimeoutMs + 2000, what);
    if (!results.get(seq)?.ok) results.set(seq, r);
    return r;
  };
  t.same(await record(1, 'seq 1'), { ok: true }, 'publishes while the broker is up');

  // Freeze the broker so that nothing is acknowledged, put five publishes on the wire, then crash it.
  process.kill(first.pid, 'SIGSTOP');
  const inflight = [2, 3, 4, 5, 6].map((seq) => record(seq, `in-flight seq ${seq}`));
  await pollUntil(() => handler.inflight === 5, 3000, 'five publishes in flight');
  await crash(first);
  for (const [i, r] of (await Promise.all(inflight)).entries()) {
    expectRetryable(t, r, `in flight at the kill (seq ${i + 2})`);
    if (!r.ok) t.match(r.message, /connection .* lost/, 'failed by the lost connection, not by its timer');
  }
  t.equal(handler.inflight, 0, 'nothing counts as in flight any more');
  t.same(Object.keys(wire.client().outgoing), [], 'mqtt.js holds nothing to resend behind our back');

  // While it is down: one at a time and several at once, every call settles, retryable.
  for (const seq of [2, 3]) expectRetryable(t, await record(seq, `seq ${seq} while down`), `seq ${seq} while the broker is down`);
  for (const r of await Promise.all([2, 3, 4, 5, 6].map((seq) => record(seq, `seq ${seq} while down, together`)))) expectRetryable(t, r, 'offered together while down');
  await sleep(300); // reconnect attempts fail meanwhile; none may throw or resolve anything

  const second = await broker(t, dataDir, first.port);
  await pollUntil(() => handler.status === 'connected', 10_000, 'the handler to reconnect on its own');
  const sub = await connectAsync(second.url, { protocolVersion: 5, clean: true, reconnectPeriod: 0 });
  t.teardown(() => sub.endAsync(true));
  const received: string[] = [];
  sub.on('message', (_topic, _payload, p) => received.push(String(p.properties?.userProperties?.['ferry-seq'])));
  await sub.subscribeAsync('ferry/#', { qos: 1 });
  for (const seq of [2, 3, 4, 5, 6, 7]) t.same(await record(seq, `seq ${seq} after restart`), { ok: true }, `seq ${seq} is published after the restart`);
  await pollUntil(() => received.length >= 6, 5000, 'six messages at the subscriber');
  t.same(received, ['2', '3', '4', '5', '6', '7'], 'the restarted broker got each packet once, in order');
  okOnlyAfterPuback(t, results, wire);
});

t.test('mqtt handler restart - a broker killed mid-stream: every call settles and only PUBACKed publishes are ok', async (t) => {
  const dataDir = t.testdir();
  const first = await broker(t, dataDir);
  const { handler, wire } = watchedHandler(t, { ...opts(first.url), inflightMax: 64 });
  // Connected first: on a loaded machine a connect can outlast publishTimeoutMs, and then every
  // call below times out before one publish went out (nothing to kill mid-stream).
  await pollUntil(() => handler.status === 'connected', 10_000, 'the handler to connect');
  const results = new Map<number, HandlerResult>();
  const count = 2000;
  const all = Array.from({ length: count }, (_, i) =>
    within(handler.handle(pkt(i + 1)), publishTimeoutMs + 3000, `seq ${i + 1}`).then((r) => {
      results.set(i + 1, r);
    }),
  );
  await pollUntil(() => wire.acked.size >= 100, 10_000, 'the first 100 PUBACKs');
  await crash(first);
  await Promise.all(all);
  const ok = [...results.values()].filter((r) => r.ok).length;
  const failed = [...results.values()].filter((r) => !r.ok);
  t.ok(ok >= 100 && ok < count, `some were delivered before the kill (${ok}) and some not`);
  t.ok(failed.every((r) => !r.ok && r.retryable), 'every failure is retryable');
  okOnlyAfterPuback(t, results, wire);
  t.same(Object.keys(wire.client().outgoing), [], 'mqtt.js holds nothing to resend');

  await broker(t, dataDir, first.port);
  await pollUntil(() => handler.status === 'connected', 10_000, 'the handler to reconnect on its own');
  const retry = [...results].filter(([, r]) => !r.ok).map(([seq]) => seq).slice(0, 50);
  for (const seq of retry) results.set(seq, await within(handler.handle(pkt(seq)), publishTimeoutMs + 2000, `retry of ${seq}`));
  t.ok(retry.every((seq) => results.get(seq)!.ok), 'the retried packets are delivered to the restarted broker');
  okOnlyAfterPuback(t, results, wire);
});

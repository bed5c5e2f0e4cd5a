/**
 * Backends that misbehave, with real processes: mosquitto is stopped mid-stream and started again
 * a few seconds later, while a webhook answers 500 at random (seeded). Every packet must reach its
 * consumer (MQTT consumers de-duplicate by the ferry-agent/ferry-seq user properties, as QoS 1
 * asks them to), the webhook sees each packet once, and the gateway's memory stays bounded by its
 * credit while the agent holds the backlog.
 */
import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { localRequest } from '../../agent/local-api.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { drainAndStopAgent, makeRig, sleep, waitFor } from '../helpers/ferry.js';
import { prng, testSeed } from '../helpers/seed.js';

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

t.test('backends - mosquitto restarts and a flaky webhook lose nothing, and gateway memory stays bounded', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const rng = prng(seed);
  const persistDir = await mkdtemp(join(tmpdir(), 'ferry-broker-'));
  t.teardown(() => rm(persistDir, { recursive: true, force: true }));
  let broker: Mosquitto = await startMosquitto({ persistDir });
  t.teardown(() => broker.stop());

  // The webhook fails a fifth of the requests, seeded.
  const hookSeen = new Map<number, number>();
  let hookFailures = 0;
  const hookOrder: number[] = [];
  const hook = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (rng() < 0.2) {
        hookFailures++;
        res.writeHead(500).end();
        return;
      }
      const seq = Number(req.headers['ferry-seq']);
      hookSeen.set(seq, (hookSeen.get(seq) ?? 0) + 1);
      hookOrder.push(seq);
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => {
    hook.closeAllConnections();
    hook.close(() => r());
  }));

  // A persistent subscriber: the broker keeps its QoS 1 messages across the restart.
  const got = new Map<number, number>();
  const sub = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clean: false, clientId: 'ferry-backends-sub', reconnectPeriod: 200, properties: { sessionExpiryInterval: 3600 } });
  t.teardown(() => sub.endAsync(true));
  sub.on('message', (_topic, _payload, packet) => {
    const seq = Number(packet.properties?.userProperties?.['ferry-seq']);
    got.set(seq, (got.get(seq) ?? 0) + 1);
  });
  await sub.subscribeAsync('ferry/#', { qos: 1 });

  const rig = await makeRig({
    agentId: 'backends', serial: false,
    routes: [
      '  - match: "metrics/#"', '    handler: mqtt', `    url: ${broker.url}`, '    publishTimeoutMs: 1000', '    inflightMax: 64',
      '  - match: "events/#"', '    handler: webhook', `    url: http://127.0.0.1:${(hook.address() as AddressInfo).port}/in`,
      '    retryAfterMs: 20', '    retryAfterMsMin: 20', '',
    ].join('\n'),
    gatewayYaml: 'limits:\n  sessionQueueBytesMax: 1048576\n  sessionQueuePacketsMax: 512\n',
  });
  t.teardown(() => rig.cleanup());
  const gateway = await rig.start('gateway');
  const agent = await rig.start('agent');
  await sleep(500);
  const rssBase = await rssBytes(gateway.pid);

  const pad = 'x'.repeat(16 * 1024);
  const metrics: number[] = [];
  const events: number[] = [];
  let rssMax = 0;
  const send = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i += 20) {
      const answers = await Promise.all(Array.from({ length: 20 }, (_, k) => {
        const target = (i + k) % 4 === 0 ? 'events/door' : `metrics/m${(i + k) % 3}`;
        return localRequest(rig.socket, { op: 'send', target, data: { i: i + k, pad } }, 5000).then((r) => ({ r, target }));
      }));
      for (const { r, target } of answers) {
        if (!r.ok) throw new Error(`send refused: ${r.message}`);
        (target.startsWith('events') ? events : metrics).push(r.seq as number);
      }
      rssMax = Math.max(rssMax, await rssBytes(gateway.pid));
    }
    for (let i = 0; i < 5; i++) {
      await sleep(100);
      rssMax = Math.max(rssMax, await rssBytes(gateway.pid));
    }
  };

  await send(200);
  // Broker down: everything for MQTT must wait at the agent, not in the gateway. Two equal
  // halves: a gateway that buffered what it cannot deliver would grow by the second half again.
  await broker.stop();
  const half = 1500;
  await send(half);
  const rssFirstHalf = rssMax;
  await send(half);
  const rssSecondHalf = rssMax;
  const during = await rig.agentStats();
  const heldMB = ((during?.backlog ?? 0) * pad.length) / 1e6;
  t.ok(during && during.backlog > half, `the agent holds the backlog while the broker is down (${during?.backlog} packets, ~${Math.round(heldMB)} MB)`);
  const growthMB = (rssSecondHalf - rssFirstHalf) / 1e6;
  t.comment(`gateway RSS: ${Math.round(rssBase / 1e6)} MB at start, ${Math.round(rssFirstHalf / 1e6)} MB after the first half of the outage, ${Math.round(rssSecondHalf / 1e6)} MB after the second (+${growthMB.toFixed(1)} MB while ${Math.round((half * pad.length) / 1e6)} MB more arrived)`);
  t.ok(growthMB < 12, 'gateway RSS stopped growing: what it cannot deliver stays with the agent (bounded by the credit)');
  broker = await startMosquitto({ port: broker.port, persistDir });
  await send(200);

  await waitFor('every metric at the subscriber', async () => (metrics.every((s) => got.has(s)) ? true : undefined), 60_000).catch(async (err) => {
    t.comment(`missing ${metrics.filter((s) => !got.has(s)).length} of ${metrics.length}; agent ${JSON.stringify(await rig.agentStats())}`);
    t.comment((await readFile(join(rig.dir, 'gateway.log'), 'utf8')).split('\n').slice(-15).join('\n'));
    throw err;
  });
  await waitFor('every event at the webhook', async () => (events.every((s) => hookSeen.has(s)) ? true : undefined), 60_000);
  const lastSeq = await drainAndStopAgent(rig, agent);
  t.equal(lastSeq, metrics.length + events.length, 'the agent generated exactly the packets sent');

  t.equal(metrics.filter((s) => !got.has(s)).length, 0, `all ${metrics.length} metrics reached the MQTT subscriber`);
  const dup = [...got.values()].filter((n) => n > 1).length;
  t.comment(`MQTT duplicates at the subscriber (QoS 1 redelivery around the broker stop): ${dup}`);
  t.ok(dup <= 64, 'duplicates, if any, are bounded by the publishes in flight when the broker stopped');
  t.equal(hookFailures > 0, true, `the webhook failed ${hookFailures} requests`);
  t.equal(events.filter((s) => hookSeen.get(s) !== 1).length, 0, `each of ${events.length} events reached the webhook exactly once`);
  t.same(hookOrder, [...events].sort((a, b) => a - b), 'events reached the webhook in seq order');
});

/**
 * Issue 10, case 1: one agent could cut MQTT delivery for all. A target mosquitto takes for a
 * malformed packet (a noncharacter such as U+FFFF) made it drop the gateway's one shared
 * connection; every in-flight publish failed retryably, and the attacker's packet came back again
 * and again. Here an attacker on the wire (no agent-side check) sends such targets every 50 ms
 * while a normal agent streams: the normal stream must arrive whole, the attacker's packets must
 * be NACKed permanently with TARGET_INVALID, and mosquitto must never see a malformed packet.
 * The same attack with targets the ID rule allows but a broker does not (a topic of more than 200
 * levels, found by review: 38 of 100 of the normal agent's packets in 20 s before the fix): the
 * mqtt handler refuses each alone, permanently, with HANDLER_FAILED.
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { localRequest } from '../../agent/local-api.js';
import { ErrorCode } from '../../protocol/errors.js';
import { FrameType, type NackFrame } from '../../protocol/frames.js';
import { sayHello } from '../helpers/hello.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { makeRig, sleep, waitFor } from '../helpers/ferry.js';

/** What the attacker sends, round robin: each would reach the broker on a gateway without the ID check. */
const forbiddenTargets = ['x\uffff', 'x\ufdd0', 'x\u{1ffff}', 'x\u{10fffe}', 'x\u0085', 'a/+/b', 'a/#', '..'];
/** Valid targets that make a topic of over 200 levels; distinct, so each has its own lane and retry timer. */
const deepTargets = Array.from({ length: 40 }, (_, k) => 'x'.repeat(k) + '/'.repeat(200));

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

t.test('mqtt - an agent sending targets MQTT forbids every 50 ms does not hold back another agent; its packets are refused with TARGET_INVALID', (t) => attackWhileStreaming(t, forbiddenTargets, ErrorCode.TARGET_INVALID));

t.test('mqtt - an agent sending targets of over 200 topic levels every 50 ms does not hold back another agent; the handler refuses each alone', (t) => attackWhileStreaming(t, deepTargets, ErrorCode.HANDLER_FAILED));

async function attackWhileStreaming(t: Test, hostileTargets: string[], code: string): Promise<void> {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const rig = await makeRig({
    agentId: 'normal',
    serial: false,
    routes: `  - match: "#"\n    handler: mqtt\n    url: ${broker.url}\n    topic: "ferry/{agent}/{target}"\n`,
    gatewayYaml: 'auth:\n  required: false\n', // explicit: the attacker needs no token here, only a session
  });
  t.teardown(() => rig.cleanup());

  const sub = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clean: true, reconnectPeriod: 0 });
  t.teardown(() => sub.endAsync(true));
  const normalSeqs = new Set<string>();
  const attackerTopics: string[] = [];
  sub.on('message', (topic, _payload, packet) => {
    const props = packet.properties?.userProperties ?? {};
    if (props['ferry-agent'] === 'normal') normalSeqs.add(String(props['ferry-seq']));
    else attackerTopics.push(topic);
  });
  await sub.subscribeAsync('ferry/#', { qos: 1 });

  await rig.start('gateway');
  await rig.start('agent');

  const attacker = await sayHello(t, `tcp://127.0.0.1:${rig.port}`, { agent: 'attacker' });
  t.equal(attacker.first?.t, FrameType.WELCOME, 'the attacker has a session');
  // Like a real agent, the attacker offers a packet again when a NACK says to retry later.
  let attackerSeq = 0;
  let framesRead = 0;
  const packetOf = (seq: number) => ({ seq, target: hostileTargets[seq % hostileTargets.length]!, ts: 1_700_000_000_000 + seq, data: { n: seq } });
  const attack = setInterval(() => {
    const resend = attacker.frames.slice(framesRead).filter((f): f is NackFrame => f.t === FrameType.NACK && f.retryAfterMs !== undefined).map((f) => f.seq);
    framesRead = attacker.frames.length;
    attackerSeq++;
    attacker.tr.send({ t: FrameType.DATA, packets: [...resend, attackerSeq].map(packetOf) });
  }, 50);
  t.teardown(() => clearInterval(attack));

  // Every hostile target is tried before the stream starts (each dropped the shared connection before the fixes).
  await waitFor('the attacker to have tried every target', async () => (attackerSeq >= hostileTargets.length ? true : undefined));
  const normalCount = 100;
  for (let i = 0; i < normalCount; i++) {
    const r = await localRequest(rig.socket, { op: 'send', target: 'sensors/temp', data: { i } });
    if (!r.ok) throw new Error(`send failed: ${JSON.stringify(r)}`);
    await sleep(20);
  }
  // The attack goes on all the while: the stream must still get through.
  await waitFor(`all ${normalCount} normal packets at the subscriber (${normalSeqs.size} so far)`, async () => (normalSeqs.size >= normalCount ? true : undefined));
  clearInterval(attack);
  const sent = attackerSeq;
  t.ok(sent > hostileTargets.length, `the attacker sent ${sent} packets, before and during the stream`);

  const nacks = () => attacker.frames.filter((f): f is NackFrame => f.t === FrameType.NACK);
  const permanent = () => new Set(nacks().filter((n) => n.code === code && n.retryAfterMs === undefined).map((n) => n.seq));
  // Bounded wait; on a gateway without the check it never completes and the assertions say why.
  await waitFor('a verdict for every attacker packet', async () => (permanent().size >= sent ? true : undefined), 10_000).catch(() => undefined);
  const wrong = nacks().filter((n) => n.code !== code || n.retryAfterMs !== undefined);
  t.same(wrong.slice(0, 3).map((n) => ({ seq: n.seq, code: n.code, retryAfterMs: n.retryAfterMs })), [], `no attacker packet is refused otherwise than permanently with ${code}`);
  t.equal(permanent().size, sent, `each attacker packet is refused permanently with ${code}`);
  t.equal(normalSeqs.size, normalCount, 'every normal packet arrived');
  t.same(attackerTopics, [], 'nothing of the attacker reached the broker');
  const log = await readFile(join(broker.dir, 'mosquitto.log'), 'utf8');
  t.notMatch(log, /malformed|disconnected due to/i, 'mosquitto saw no malformed packet and dropped no client');
}

import t from 'tap';
import mqtt from 'mqtt';
import { localRequest } from '../../agent/local-api.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { drainAndStopAgent, makeRig, waitFor } from '../helpers/ferry.js';

interface Got { topic: string; payload: string; agent: unknown; seq: unknown; count: number }

t.test('mqtt - packets reach a real mosquitto once each, with agent ID and seq as user properties', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const rig = await makeRig({
    agentId: 'mqtt-agent',
    serial: false,
    routes: `  - match: "sensors/#"\n    handler: mqtt\n    url: ${broker.url}\n    topic: "ferry/{agent}/{target}"\n`,
  });
  t.teardown(() => rig.cleanup());

  const sub = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clean: true });
  t.teardown(() => sub.endAsync(true));
  const got = new Map<number, Got>();
  sub.on('message', (topic, payload, packet) => {
    const props = packet.properties?.userProperties ?? {};
    const seq = Number(props['ferry-seq']);
    const prev = got.get(seq);
    got.set(seq, { topic, payload: payload.toString(), agent: props['ferry-agent'], seq: props['ferry-seq'], count: (prev?.count ?? 0) + 1 });
  });
  await sub.subscribeAsync('ferry/#', { qos: 1 });

  await rig.start('gateway');
  const agent = await rig.start('agent');
  const sent = new Map<number, { target: string; data: unknown }>();
  for (let batch = 0; batch < 10; batch++) {
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => {
      const target = `sensors/room${i % 3}/temp`;
      const data = { n: batch * 30 + i, v: 20 + i / 10 };
      return localRequest(rig.socket, { op: 'send', target, data }).then((r) => ({ r, target, data }));
    }));
    for (const { r, target, data } of answers) {
      if (!r.ok || r.seq === undefined) throw new Error(`send failed: ${JSON.stringify(r)}`);
      sent.set(r.seq, { target, data });
    }
  }
  await waitFor('all packets at the subscriber', async () => (got.size >= sent.size ? true : undefined));
  const lastSeq = await drainAndStopAgent(rig, agent);
  t.equal(lastSeq, sent.size, 'the agent generated exactly the packets sent');

  let wrong = 0;
  for (const [seq, s] of sent) {
    const g = got.get(seq);
    if (!g || g.count !== 1 || g.topic !== `ferry/mqtt-agent/${s.target}` || g.agent !== 'mqtt-agent' || g.seq !== String(seq) || g.payload !== JSON.stringify(s.data)) {
      wrong++;
      if (wrong <= 3) t.comment(`seq ${seq}: sent ${JSON.stringify(s)}, got ${JSON.stringify(g)}`);
    }
  }
  t.equal(got.size, sent.size, 'the subscriber saw exactly the seqs that were sent');
  t.equal(wrong, 0, 'each arrived once, on its topic, with its payload and with ferry-agent/ferry-seq user properties');
});

t.test('mqtt - a target with no route is rejected and kept as a dead letter, later packets still flow', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const rig = await makeRig({ agentId: 'mqtt-dl', serial: false, routes: `  - match: "sensors/#"\n    handler: mqtt\n    url: ${broker.url}\n    topic: "ferry/{agent}/{target}"\n` });
  t.teardown(() => rig.cleanup());
  const sub = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
  t.teardown(() => sub.endAsync(true));
  const topics: string[] = [];
  sub.on('message', (topic) => topics.push(topic));
  await sub.subscribeAsync('ferry/#', { qos: 1 });
  await rig.start('gateway');
  await rig.start('agent');

  const bad = await localRequest(rig.socket, { op: 'send', target: 'nowhere/x', data: 1 });
  const good = await localRequest(rig.socket, { op: 'send', target: 'sensors/a', data: 2 });
  t.ok(bad.ok && good.ok, 'both packets were stored');
  await waitFor('the good packet at the subscriber', async () => (topics.includes('ferry/mqtt-dl/sensors/a') ? true : undefined));
  const stats = await waitFor('the rejected packet to be acked', async () => {
    const s = await rig.agentStats();
    return s && s.backlog === 0 && s.deadLetters === 1 ? s : undefined;
  });
  t.equal(stats.deadLetters, 1, 'one dead letter');
  const { execFile } = await import('node:child_process');
  const { ferryBin } = await import('../../cli/proc.js');
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, [ferryBin, 'agent', '--config', `${rig.dir}/agent.yaml`, '--dead-letters'], (err, stdout) => (err ? reject(err) : resolve(stdout))));
  const dl = out.trim().split('\n').map((l) => JSON.parse(l) as { target: string; code: string; seq: number });
  t.equal(dl.length, 1, 'ferry agent --dead-letters lists one packet');
  t.equal(dl[0]?.target, 'nowhere/x', 'the unroutable one');
  t.equal(dl[0]?.code, 'UNKNOWN_TARGET', 'with the gateway\'s reason code');
  t.notOk(topics.some((x) => x.includes('nowhere')), 'nothing was published for it');
});

/**
 * The downlink MQTT subscription of a real `ferry gateway` process against a real mosquitto
 * (dist/cli/ferry.js: run `npx tsc -p .` first). Messages are read back through the API.
 * - what is published is queued with its agent, target and data; bad messages are dropped with
 *   their code in the log and never hold up the good ones after them;
 * - the gateway SIGKILLed (twice) while a publisher sends QoS 1 messages: once it is back, every
 *   message is queued, in order of first arrival, and at most one per kill twice (the gateway
 *   acknowledges only after the durable enqueue, and handles one message at a time, so a kill can
 *   leave at most one message queued but not acknowledged, which the broker sends again).
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connectAsync, type MqttClient } from 'mqtt';
import { makeRig, waitFor, type Rig } from '../helpers/ferry.js';
import { addApp, apiCall, gatewayDataDir } from '../helpers/downlink-api.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { prng, testSeed } from '../helpers/seed.js';
import { ErrorCode } from '../../protocol/errors.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

async function setup(t: Test): Promise<{ rig: Rig; pub: MqttClient; token: string; api: number }> {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const rig = await makeRig({
    agentId: 'pi-m', serial: false, api: true,
    gatewayYaml: `downlink:\n  mqtt:\n    url: ${broker.url}\n    clientId: ferry-dl-test-${process.pid}\n`,
  });
  t.teardown(() => rig.cleanup());
  const token = await addApp(gatewayDataDir(rig.dir), 'reader');
  const pub = await connectAsync(broker.url, { protocolVersion: 5, clientId: `pub-${process.pid}-${Math.random().toString(36).slice(2)}` });
  t.teardown(() => pub.endAsync(true));
  return { rig, pub, token, api: rig.apiPort! };
}

const queued = async (api: number, token: string, agent: string): Promise<{ target: string; data: unknown; from: string }[]> => {
  const r = await apiCall(api, token, 'GET', `/v1/agents/${agent}/messages?limit=1000`).catch(() => null);
  return (r?.body.messages as { target: string; data: unknown; from: string }[] | undefined) ?? [];
};

/** Publishes probes until one is queued: the gateway's subscription is in place from then on. */
async function subscribed(pub: MqttClient, api: number, token: string): Promise<void> {
  await waitFor('the gateway\'s subscription', async () => {
    await pub.publishAsync('ferry/down/pi-m/probe', '0', { qos: 1 });
    return (await queued(api, token, 'pi-m')).length > 0 ? true : undefined;
  });
}

t.test('downlink mqtt - published messages are queued; bad ones are dropped by code and do not hold up the rest', async (t) => {
  const { rig, pub, token, api } = await setup(t);
  await rig.start('gateway');
  await subscribed(pub, api, token);
  await pub.publishAsync('ferry/down/pi-m/cfg/interval', '{"ms":200}', { qos: 1 });
  await pub.publishAsync('ferry/down/pi-unknown/x', '1', { qos: 1 });
  await pub.publishAsync('ferry/down/pi-m', '1', { qos: 1 });
  await pub.publishAsync('ferry/down/pi-m/big', Buffer.alloc(70_000), { qos: 1 });
  await pub.publishAsync('ferry/down/pi-m/cmd', 'interval=200', { qos: 1 });
  await waitFor('the last message', async () => ((await queued(api, token, 'pi-m')).some((m) => m.target === 'cmd') ? true : undefined));
  const got = (await queued(api, token, 'pi-m')).filter((m) => m.target !== 'probe');
  t.same(got.map((m) => [m.target, m.data, m.from]), [['cfg/interval', { ms: 200 }, 'mqtt'], ['cmd', { base64: Buffer.from('interval=200').toString('base64') }, 'mqtt']]);
  const log = await readFile(join(rig.dir, 'gateway.log'), 'utf8');
  for (const code of [ErrorCode.API_AGENT_UNKNOWN, ErrorCode.API_BODY_INVALID, ErrorCode.API_BODY_TOO_LARGE]) {
    t.ok(log.split('\n').some((l) => l.includes('downlink mqtt: message dropped') && l.includes(code)), `dropped with ${code}, logged`);
  }
});

t.test('downlink mqtt - the gateway SIGKILLed while QoS 1 messages are published: none lost, in order, a repeat at most per kill', async (t) => {
  const rng = prng(testSeed((m) => t.comment(m)));
  const { rig, pub, token, api } = await setup(t);
  let gw = await rig.start('gateway');
  await subscribed(pub, api, token);
  const total = 400;
  const kills = [50 + Math.floor(rng() * 120), 200 + Math.floor(rng() * 120)];
  t.comment(`SIGKILL at messages ${kills.join(' and ')}`);
  for (let n = 0; n < total; n++) {
    // The broker PUBACKs the publisher whether or not the gateway is up: it keeps them for the gateway's session.
    await pub.publishAsync('ferry/down/pi-m/seq', String(n), { qos: 1 });
    if (kills.includes(n)) {
      gw.kill('SIGKILL');
      await gw.exited;
      gw = await rig.start('gateway');
    }
  }
  const all = await waitFor('every message queued', async () => {
    const got = (await queued(api, token, 'pi-m')).filter((m) => m.target === 'seq').map((m) => m.data as number);
    return new Set(got).size === total ? got : undefined;
  }, 60_000);
  const firsts = all.filter((n, i) => all.indexOf(n) === i);
  t.same(firsts, Array.from({ length: total }, (_, i) => i), 'each message queued, in the order published');
  const repeats = all.length - total;
  t.comment(`${repeats} queued twice (the broker resent a message the gateway had queued but not acknowledged)`);
  t.ok(repeats <= kills.length, `at most one repeat per kill (${repeats})`);
});

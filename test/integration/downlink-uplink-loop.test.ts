/**
 * The gateway's own uplink never feeds its own downlink (docs/security.md, hostile agent; found by
 * the security review of the downlink MQTT subscription against issue 10's "one agent cannot hurt
 * another"). With the documented defaults on one broker — an uplink mqtt route with
 * topic `ferry/{agent}/{target}` (gateway/config.ts, examples/gateway.yaml) and `downlink.mqtt`
 * subscribed to `ferry/down/{agent}/#` — the uplink namespace of the agent whose ID is `down` IS
 * the downlink namespace of every agent. That agent's packet with target `victim/cmd/reboot` is
 * published by the gateway's own mqtt handler on `ferry/down/victim/cmd/reboot`; the gateway's own
 * subscription then queues it as a downlink message for `victim`, bypassing application tokens and
 * `--agents` limits, and on the device it reaches the `exec` / `local` / `serial` consumer routed
 * for `cmd/#`. With `auth.required: false` (allowed on loopback) any stranger can say HELLO as
 * `down`; with auth on it takes a registered agent of that name (or any agent, with an uplink
 * template such as `ferry/{target}`). Expected: no uplink packet becomes a downlink message; the
 * packet is NACKed for good (HANDLER_REJECTED), and the gateway warned at start that the route's
 * template reaches the subscription on the same broker.
 */
import t from 'tap';
import { join } from 'node:path';
import { AgentRegistry } from '../../gateway/agents.js';
import { FrameType } from '../../protocol/frames.js';
import { sayHello } from '../helpers/hello.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { makeRig, sleep } from '../helpers/ferry.js';
import { addApp, apiCall, gatewayDataDir } from '../helpers/downlink-api.js';

t.test('downlink mqtt - an agent\'s uplink packet does not become a downlink message for another agent', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  // The hostile agent is a registered one named `down` (auth on, the default).
  const rig = await makeRig({
    agentId: 'down', serial: false, api: true,
    routes: `  - match: "#"\n    handler: mqtt\n    url: ${broker.url}\n    topic: "ferry/{agent}/{target}"\n`,
    gatewayYaml: `downlink:\n  mqtt:\n    url: ${broker.url}\n    clientId: ferry-dl-review-${process.pid}\n`,
  });
  t.teardown(() => rig.cleanup());
  const registry = await AgentRegistry.open(join(rig.dir, 'gw'), { watchIntervalMs: 0 });
  await registry.add('victim');
  registry.close();
  const token = await addApp(gatewayDataDir(rig.dir), 'reader');
  const gateway = await rig.start('gateway');
  // Let the gateway's subscription settle.
  await sleep(1500);

  const hostile = await sayHello(t, `tcp://127.0.0.1:${rig.port}`, { agent: 'down', token: rig.token });
  t.equal(hostile.first?.t, FrameType.WELCOME, 'the agent `down` has a session');
  hostile.tr.send({ t: FrameType.DATA, packets: [{ seq: 1, target: 'victim/cmd/reboot', ts: Date.now(), data: { now: true } }] });
  // Its ACK: the packet was published.
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !hostile.frames.some((f) => f.t === FrameType.ACK || f.t === FrameType.NACK)) await sleep(50);
  const nack = hostile.frames.find((f) => f.t === FrameType.NACK);
  t.match(nack, { seq: 1, code: 'HANDLER_REJECTED' }, `the packet is refused for good: ${JSON.stringify(hostile.frames.filter((f) => f.t !== FrameType.WELCOME))}`);
  t.notOk('retryAfterMs' in (nack ?? {}), 'not retryable');
  t.match(gateway.output(), /routes\[0\]\.topic \\"ferry\/\{agent\}\/\{target\}\\" can render topics under the downlink subscription \\"ferry\/down\/\+\/#\\"/, 'the start warned that the route reaches the subscription');
  await sleep(1500);

  const r = await apiCall(rig.apiPort!, token, 'GET', '/v1/agents/victim/messages?limit=100');
  const messages = (r.body.messages as { target: string; from: string; data: unknown }[] | undefined) ?? [];
  t.same(messages.map((m) => [m.target, m.from, m.data]), [], `messages queued for victim: ${JSON.stringify(messages)}`);
});

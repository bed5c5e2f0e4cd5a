/**
 * Downlink end to end, real processes: an application posts `interval=200` to the simulated
 * sensor through the gateway's API; the agent writes it to the sensor's serial line (a real
 * pseudo-terminal), the sensor answers `ok` and changes its rate, and the uplink rate the gateway
 * records changes with it. Over the TCP tunnel and over HTTP long-poll. Refusals come back too: a
 * command the sensor answers `err` to, and a target no route takes.
 */
import t, { type Test } from 'tap';
import { makeRig, waitFor, type Rig } from '../helpers/ferry.js';
import { addApp, gatewayDataDir, postMessage, waitState } from '../helpers/downlink-api.js';

/** Packets of `target` per second whose event time falls in [fromMs, toMs). */
function rate(lines: { target: string; ts: number }[], target: string, fromMs: number, toMs: number): number {
  return lines.filter((l) => l.target === target && l.ts >= fromMs && l.ts < toMs).length / ((toMs - fromMs) / 1000);
}

async function run(t: Test, carrier: 'tcp' | 'longpoll'): Promise<void> {
  const rig: Rig = await makeRig({
    agentId: `dl-e2e-${carrier}`, rateHz: 100, api: true,
    ...(carrier === 'longpoll' ? { http: true, agentGateway: 'http://127.0.0.1:{http}' } : {}),
    // One packet per reading: the sensor's rate is the uplink rate.
    rules: ['  - { kind: delta, key: t, delta: 0.000001, target: telemetry/temp }'],
    agentYaml: 'downlink:\n  routes:\n    - { match: sensor/cmd, to: serial, source: sensor }\n',
  });
  t.teardown(() => rig.cleanup());
  const token = await addApp(gatewayDataDir(rig.dir), 'ops');
  const api = rig.apiPort!;
  await rig.start('sim');
  await rig.start('gateway');
  await rig.start('agent');
  const agent = `dl-e2e-${carrier}`;

  await waitFor('readings at the sensor\'s first rate', async () => ((await rig.lines()).length > 200 ? true : undefined));
  const postedAt = Date.now();
  const id = await postMessage(api, token, agent, { target: 'sensor/cmd', data: 'interval=200' });
  const acked = await waitState(api, token, agent, id, ['acked', 'rejected']);
  t.equal(acked.state, 'acked', `the sensor took interval=200 (${JSON.stringify(acked)})`);
  const ackedAt = Date.now();
  // Two seconds at the new rate.
  await waitFor('two seconds of readings at the new rate', async () => {
    const lines = await rig.lines();
    return lines.some((l) => l.ts >= ackedAt + 2500) ? lines : undefined;
  });
  const lines = await rig.lines();
  const before = rate(lines, 'telemetry/temp', postedAt - 2000, postedAt);
  const after = rate(lines, 'telemetry/temp', ackedAt + 500, ackedAt + 2500);
  t.ok(before >= 50, `before: ${before.toFixed(1)} readings/s at the gateway (the sensor's 100 Hz)`);
  t.ok(after >= 2 && after <= 8, `after: ${after.toFixed(1)} readings/s at the gateway (one per 200 ms)`);

  const bad = await postMessage(api, token, agent, { target: 'sensor/cmd', data: 'interval=fast' });
  const refused = await waitState(api, token, agent, bad, ['acked', 'rejected']);
  t.equal(refused.state, 'rejected', 'the sensor refused a bad value');
  t.equal(refused.code, 'DOWNLINK_REFUSED', 'with DOWNLINK_REFUSED');
  t.match(String(refused.reason), /bad value|interval/, `the sensor's own reason reaches the application: ${refused.reason}`);

  const lost = await postMessage(api, token, agent, { target: 'nowhere/cmd', data: 'x' });
  const noRoute = await waitState(api, token, agent, lost, ['acked', 'rejected']);
  t.equal(noRoute.code, 'DOWNLINK_NO_ROUTE', 'a target no route takes is refused with DOWNLINK_NO_ROUTE');
  const stats = await rig.agentStats();
  t.ok(stats !== null && stats.gateway?.startsWith(carrier === 'tcp' ? 'tcp://' : 'http://'), `the agent was on ${carrier} (${stats?.gateway})`);
}

t.test('downlink e2e - interval=200 changes the sensor\'s rate, over the TCP tunnel', (t) => run(t, 'tcp'));
t.test('downlink e2e - interval=200 changes the sensor\'s rate, over HTTP long-poll', (t) => run(t, 'longpoll'));

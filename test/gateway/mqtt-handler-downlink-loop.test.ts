/**
 * The mqtt handler never publishes under the gateway's own downlink subscription (reservedFilters):
 * with `ferry/{agent}/{target}` an agent named `down`, with `ferry/{target}` any agent (target
 * `down/victim/x`), would otherwise publish a command the gateway queues for another agent.
 */
import t from 'tap';
import { connectAsync } from 'mqtt';
import type { DispatchPacket } from '../../gateway/handlers/handler.js';
import { createMqttHandler } from '../../gateway/handlers/mqtt.js';
import { templateCanReach, topicMatchesFilter, uplinkReachesDownlink } from '../../gateway/handlers/topic-filter.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { pollUntil } from '../helpers/wait.js';

const filter = 'ferry/down/+/#';

t.test('topic filter - MQTT matching of + and #, the parent level included', async (t) => {
  const cases: [string, string, boolean][] = [
    [filter, 'ferry/down/victim/cmd/reboot', true],
    [filter, 'ferry/down/victim/x', true],
    [filter, 'ferry/down/victim', true], // `#` matches its parent level too (MQTT 3.1.1 §4.7.1.2)
    [filter, 'ferry/down', false],
    [filter, 'ferry/downs/victim/x', false],
    [filter, 'ferry/up/down/victim', false],
    ['a/+/c', 'a/b/c', true],
    ['a/+/c', 'a/b/c/d', false],
    ['a/+', 'a//', false],
    ['#', 'anything/at/all', true],
  ];
  for (const [f, topic, expected] of cases) t.equal(topicMatchesFilter(f, topic), expected, `${f} ~ ${topic}`);
});

t.test('topic filter - which templates some agent and target can render into the filter', async (t) => {
  const cases: [string, boolean][] = [
    ['ferry/{agent}/{target}', true], // agent `down`
    ['ferry/{target}', true], // target `down/victim/x`
    ['{target}', true],
    ['ferry/down/{agent}/{target}', true],
    ['ferry/d{agent}/{target}', true], // agent `own`
    ['ferry/up/{agent}/{target}', false],
    ['fleet/{agent}/{target}', false],
    ['ferry/x-{target}', false], // level 2 always starts x-, never `down`
    ['ferry/down', false], // never reaches the agent level
  ];
  for (const [template, expected] of cases) t.equal(templateCanReach(template, filter), expected, template);
});

t.test('topic filter - the start warns only for a route on the same broker whose template reaches the filter', async (t) => {
  const warned = uplinkReachesDownlink([
    { index: 0, url: 'mqtt://Broker.local', topic: 'ferry/{agent}/{target}' },
    { index: 1, url: 'mqtt://broker.local:1883', topic: 'ferry/up/{agent}/{target}' },
    { index: 2, url: 'mqtt://other.local:1883', topic: 'ferry/{target}' },
    { index: 3, url: 'mqtt://user:pw@broker.local:1883/', topic: 'ferry/{target}' },
  ], { url: 'mqtt://broker.local:1883', filter });
  t.equal(warned.length, 2, warned.join('\n'));
  t.match(warned[0], /routes\[0\]\.topic "ferry\/\{agent\}\/\{target\}"/);
  t.match(warned[1], /routes\[3\]\.topic "ferry\/\{target\}"/);
  t.notMatch(warned.join(''), /pw/, 'no credentials in the warning');
});

t.test('mqtt handler - a topic under the downlink subscription is refused for good (HANDLER_REJECTED) and never published', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const seen: string[] = [];
  const watcher = await connectAsync(broker.url, { protocolVersion: 5, clean: true, reconnectPeriod: 0 });
  t.teardown(() => watcher.endAsync(true));
  watcher.on('message', (topic) => seen.push(topic));
  await watcher.subscribeAsync('#', { qos: 1 });

  const byAgent = createMqttHandler({ url: broker.url, topic: 'ferry/{agent}/{target}', reservedFilters: [filter] });
  const byTarget = createMqttHandler({ url: broker.url, topic: 'ferry/{target}', reservedFilters: [filter] });
  t.teardown(() => Promise.all([byAgent.close(), byTarget.close()]));
  const pkt = (agent: string, seq: number, target: string): DispatchPacket => ({ agent, seq, target, ts: 1, data: { seq } });

  for (const [h, p] of [
    [byAgent, pkt('down', 1, 'victim/cmd/reboot')],
    [byAgent, pkt('down', 2, 'victim')],
    [byTarget, pkt('pi-a', 3, 'down/victim/x')],
    [byTarget, pkt('pi-a', 4, 'down/victim')],
  ] as const) {
    const r = await h.handle(p);
    t.match(r, { ok: false, retryable: false, code: 'HANDLER_REJECTED', message: /downlink subscription \(ferry\/down\/\+\/#\)/ }, `${p.agent} ${p.target}`);
  }
  // Beside it, nothing changes: near misses publish.
  t.same(await byAgent.handle(pkt('downs', 5, 'victim/cmd')), { ok: true });
  t.same(await byTarget.handle(pkt('pi-a', 6, 'up/down/victim')), { ok: true });
  await pollUntil(() => seen.length >= 2, 5000, 'the two near misses at the watcher');
  t.same(seen.sort(), ['ferry/downs/victim/cmd', 'ferry/up/down/victim'], 'only the near misses reached the broker');
});

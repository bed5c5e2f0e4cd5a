/** Reading a message of the downlink MQTT subscription, without IO (gateway/downlink/mqtt-message.ts). */
import t from 'tap';
import { downlinkTopic, parsePublish, payloadData } from '../../gateway/downlink/mqtt-message.js';
import { ErrorCode } from '../../protocol/errors.js';

const limits = { messageBytesMax: 64, dataDepthMax: 4 };
const topic = downlinkTopic('ferry/down/{agent}/#');
const text = (s: string): Uint8Array => Buffer.from(s);

t.test('mqtt message - the template becomes a filter and the agent level', async (t) => {
  t.same(topic, { filter: 'ferry/down/+/#', agentLevel: 2 });
  t.same(downlinkTopic('{agent}/#'), { filter: '+/#', agentLevel: 0 });
  t.same(downlinkTopic('a/b/c/{agent}/#'), { filter: 'a/b/c/+/#', agentLevel: 3 });
  t.throws(() => downlinkTopic('ferry/{agent}/x/#'));
});

t.test('mqtt message - agent from its level, target from the rest, payload JSON or bytes, expiry as ttl', async (t) => {
  t.same(parsePublish({ topic: 'ferry/down/pi-1/cfg/interval', payload: text('{"ms": 200}') }, topic, limits),
    { agent: 'pi-1', accepted: { target: 'cfg/interval', data: { ms: 200 }, from: 'mqtt' } });
  t.same(parsePublish({ topic: 'ferry/down/pi-1/x', payload: text('"on"'), messageExpiryInterval: 30 }, topic, limits),
    { agent: 'pi-1', accepted: { target: 'x', data: 'on', from: 'mqtt', ttlMs: 30_000 } });
  const raw = parsePublish({ topic: 'ferry/down/pi-1/x', payload: text('interval=200') }, topic, limits);
  t.ok('accepted' in raw && raw.accepted.data instanceof Uint8Array, 'not JSON: bytes');
  t.same('accepted' in raw && Buffer.from(raw.accepted.data as Uint8Array).toString(), 'interval=200');
  const binary = parsePublish({ topic: 'ferry/down/pi-1/x', payload: new Uint8Array([0x31, 0xff]) }, topic, limits);
  t.ok('accepted' in binary && binary.accepted.data instanceof Uint8Array, 'not UTF-8: bytes, even if it starts like JSON');
  const empty = parsePublish({ topic: 'ferry/down/pi-1/x', payload: new Uint8Array(0) }, topic, limits);
  t.ok('accepted' in empty && empty.accepted.data instanceof Uint8Array && empty.accepted.data.length === 0, 'an empty payload is empty bytes');
  const zero = parsePublish({ topic: 'ferry/down/pi-1/x', payload: text('1'), messageExpiryInterval: 0 }, topic, limits);
  t.equal('accepted' in zero && zero.accepted.ttlMs, 1, 'expiry 0 left: the least ttl');
  const long = parsePublish({ topic: 'ferry/down/pi-1/x', payload: text('1'), messageExpiryInterval: 0xffffffff }, topic, limits);
  t.equal('accepted' in long && long.accepted.ttlMs, 365 * 24 * 3600 * 1000, 'a very long expiry is held to a year');
  t.same(payloadData(text('[1,2]')), [1, 2]);
});

t.test('mqtt message - every bad message gets its code', async (t) => {
  const cases: [string, Uint8Array, string, RegExp][] = [
    ['ferry/down/pi-1', text('1'), ErrorCode.API_BODY_INVALID, /no target after the agent ID/],
    ['ferry/down/pi-1/', text('1'), ErrorCode.API_BODY_INVALID, /no target/],
    ['ferry/down/bad agent/x', text('1'), ErrorCode.API_AGENT_UNKNOWN, /not an agent ID/],
    ['ferry/down/../x', text('1'), ErrorCode.API_AGENT_UNKNOWN, /not an agent ID/],
    ['ferry/down/pi-1/a\u0001b', text('1'), ErrorCode.API_BODY_INVALID, /control character/],
    ['ferry/down/pi-1/x', Buffer.alloc(65), ErrorCode.API_BODY_TOO_LARGE, /65 bytes; the maximum is 64/],
    ['ferry/down/pi-1/x', text('[[[[[1]]]]]'), ErrorCode.API_BODY_INVALID, /nested more than 4/],
    ['ferry/down/pi-1/x', text('{"__proto__": 1}'), ErrorCode.API_BODY_INVALID, /__proto__/],
  ];
  for (const [tp, payload, code, message] of cases) t.match(parsePublish({ topic: tp, payload }, topic, limits), { code, message }, tp);
  t.match(parsePublish({ topic: 'ferry/down/pi-1', payload: text('1') }, topic, limits), { agent: 'pi-1' }, 'the agent is named for the log when known');
});

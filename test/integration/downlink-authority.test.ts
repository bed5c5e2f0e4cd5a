/**
 * Downlink authority against the real gateway process: an agent receives only its own messages,
 * and a session can never settle another agent's. Agent B, authenticated, answers agent A's
 * message IDs (as accepted, and as refused) in DOWN_ACKs of its own: A's messages stay queued,
 * B is sent none of them, and A, once connected, gets every one. An application token limited to
 * A can neither queue for B nor read B's messages.
 */
import t from 'tap';
import { FrameType, type DownFrame } from '../../protocol/frames.js';
import { AgentRegistry } from '../../gateway/agents.js';
import { makeRig, sleep, waitFor } from '../helpers/ferry.js';
import { sayHello } from '../helpers/hello.js';
import { addApp, apiCall, gatewayDataDir, messageState, postMessage } from '../helpers/downlink-api.js';

t.test('downlink authority - agent B cannot ack agent A\'s messages, nor receive them; an app limited to A cannot reach B', async (t) => {
  const rig = await makeRig({ agentId: 'dl-a', serial: false, api: true });
  t.teardown(() => rig.cleanup());
  const gwDir = gatewayDataDir(rig.dir);
  const registry = await AgentRegistry.open(gwDir, { watchIntervalMs: 0 });
  const tokenB = await registry.add('dl-b');
  registry.close();
  const allToken = await addApp(gwDir, 'ops');
  const onlyA = await addApp(gwDir, 'a-only', ['dl-a']);
  await rig.start('gateway');
  const api = rig.apiPort!;
  const url = `tcp://127.0.0.1:${rig.port}`;

  const ids = [await postMessage(api, allToken, 'dl-a', { target: 'x/1', data: 1 }), await postMessage(api, allToken, 'dl-a', { target: 'x/2', data: 2 })];
  const b = await sayHello(t, url, { agent: 'dl-b', token: tokenB, downMessagesMax: 16 });
  t.equal(b.first?.t, FrameType.WELCOME, 'B is welcomed');
  b.tr.send({ t: FrameType.DOWN_ACK, results: [{ id: ids[0]!, ok: true }, { id: ids[1]!, ok: false, code: 'DOWNLINK_REFUSED', reason: 'not yours' }] });
  // B's session is still open (a PING answered) after its DOWN_ACK was read.
  b.tr.send({ t: FrameType.PING, id: 7 });
  await waitFor('B\'s PONG', async () => (b.frames.some((f) => f.t === FrameType.PONG) ? true : undefined));
  for (const id of ids) t.equal((await messageState(api, allToken, 'dl-a', id)).state, 'queued', `A's ${id} is still queued after B's DOWN_ACK`);
  t.same(b.frames.filter((f) => f.t === FrameType.DOWN), [], 'B was sent none of A\'s messages');

  const a = await sayHello(t, url, { agent: 'dl-a', token: rig.token, downMessagesMax: 16 });
  t.equal(a.first?.t, FrameType.WELCOME, 'A is welcomed');
  await waitFor('A\'s DOWN', async () => (a.frames.some((f) => f.t === FrameType.DOWN) ? true : undefined));
  const down = a.frames.filter((f): f is DownFrame => f.t === FrameType.DOWN).flatMap((f) => f.messages.map((m) => m.id));
  t.same(down, ids, 'A gets both of its messages, in order');
  a.tr.send({ t: FrameType.DOWN_ACK, results: ids.map((id) => ({ id, ok: true as const })) });
  for (const id of ids) await waitFor(`${id} acked`, async () => ((await messageState(api, allToken, 'dl-a', id)).state === 'acked' ? true : undefined));
  await sleep(100);
  t.same(b.frames.filter((f) => f.t === FrameType.DOWN), [], 'B still has none');

  const postB = await apiCall(api, onlyA, 'POST', '/v1/agents/dl-b/messages', { target: 'x/1', data: 1 });
  t.equal(postB.status, 403, 'the token limited to A cannot queue for B');
  t.equal(postB.body.code, 'API_FORBIDDEN', 'API_FORBIDDEN');
  const bId = await postMessage(api, allToken, 'dl-b', { target: 'x/1', data: 'for b' });
  const getB = await apiCall(api, onlyA, 'GET', `/v1/agents/dl-b/messages/${bId}`);
  t.equal(getB.status, 403, 'nor read B\'s message');
  const listB = await apiCall(api, onlyA, 'GET', '/v1/agents/dl-b/messages');
  t.equal(listB.status, 403, 'nor list B\'s messages');
  const postA = await apiCall(api, onlyA, 'POST', '/v1/agents/dl-a/messages', { target: 'x/3', data: 3 });
  t.equal(postA.status, 201, 'but it can queue for A');
});

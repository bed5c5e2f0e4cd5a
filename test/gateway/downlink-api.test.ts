/**
 * The application API of a real `ferry gateway` process (dist/cli/ferry.js: run `npx tsc -p .`
 * first): tokens (401) and their agent limits (403), every bad input the issue names getting its
 * status and coded JSON body, and none of them losing what was queued before.
 */
import t from 'tap';
import { request } from 'node:http';
import { makeRig, waitFor, type Rig } from '../helpers/ferry.js';
import { addApp, apiCall, gatewayDataDir, messageState, postMessage } from '../helpers/downlink-api.js';
import { ErrorCode } from '../../protocol/errors.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

/** A request with any body and headers (apiCall sends JSON only). */
function rawCall(port: number, method: string, path: string, headers: Record<string, string>, body?: string | Buffer): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) as Record<string, unknown> });
        } catch {
          reject(new Error(`not JSON (${res.statusCode}): ${text.slice(0, 200)}`));
        }
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function rig(t: Test, gatewayYaml = ''): Promise<{ rig: Rig; api: number; all: string; onlyA: string }> {
  const r = await makeRig({ agentId: 'pi-a', serial: false, api: true, gatewayYaml });
  t.teardown(() => r.cleanup());
  const all = await addApp(gatewayDataDir(r.dir), 'all');
  const onlyA = await addApp(gatewayDataDir(r.dir), 'only-a', ['pi-a']);
  const { AgentRegistry } = await import('../../gateway/agents.js');
  const registry = await AgentRegistry.open(gatewayDataDir(r.dir), { watchIntervalMs: 0 });
  await registry.add('pi-b');
  registry.close();
  const gw = await r.start('gateway');
  const m = await waitFor('the API URL printed', async () => gw.output().match(/ferry gateway api listening on http:\/\/127\.0\.0\.1:(\d+)\n/) ?? undefined);
  t.equal(Number(m[1]), r.apiPort, 'the API URL is printed at start');
  return { rig: r, api: r.apiPort!, all, onlyA };
}

t.test('downlink api - tokens: none or a wrong one is 401; one limited to A gets 403 for B on POST, GET and list', async (t) => {
  const { api, all, onlyA } = await rig(t);
  const none = await apiCall(api, null, 'POST', '/v1/agents/pi-a/messages', { target: 'x', data: 1 });
  t.equal(none.status, 401);
  t.equal(none.body.code, ErrorCode.API_AUTH_FAILED);
  t.match(none.body.message, /Authorization: Bearer/);
  const wrong = await rawCall(api, 'GET', '/v1/agents/pi-a/messages', { authorization: 'Bearer nope-not-a-token' });
  t.equal(wrong.status, 401);
  t.equal(wrong.headers['www-authenticate'], 'Bearer realm="ferry"');
  t.notMatch(JSON.stringify(wrong.body), /nope-not-a-token/, 'the token is not echoed');
  t.equal((await apiCall(api, `${all}x`, 'GET', '/v1/agents/pi-a/messages')).status, 401, 'a token one character off');
  const basic = await rawCall(api, 'GET', '/v1/agents/pi-a/messages', { authorization: `Basic ${Buffer.from(`u:${all}`).toString('base64')}` });
  t.equal(basic.status, 401, 'another scheme');

  const idB = await postMessage(api, all, 'pi-b', { target: 'cfg', data: 'for b' });
  for (const [method, path] of [['POST', '/v1/agents/pi-b/messages'], ['GET', `/v1/agents/pi-b/messages/${idB}`], ['GET', '/v1/agents/pi-b/messages'], ['GET', '/v1/agents/pi-c/messages/whatever']] as const) {
    const r = await apiCall(api, onlyA, method, path, method === 'POST' ? { target: 'x', data: 1 } : undefined);
    t.equal(r.status, 403, `${method} ${path}: 403`);
    t.equal(r.body.code, ErrorCode.API_FORBIDDEN);
  }
  const idA = await postMessage(api, onlyA, 'pi-a', { target: 'cfg', data: 'for a' });
  t.equal((await messageState(api, onlyA, 'pi-a', idA)).from, 'only-a', 'A is within reach, and the sender is recorded');
  t.same((await apiCall(api, all, 'GET', '/v1/agents/pi-b/messages')).body.messages, [(await messageState(api, all, 'pi-b', idB))], 'B\'s message is untouched');
});

t.test('downlink api - every bad input gets its status and coded body; what was queued before is still there', async (t) => {
  const { rig: r, api, all } = await rig(t, 'downlink:\n  queueMessagesMax: 3\n  messageBytesMax: 1000\nlimits:\n  api:\n    bodyBytesMax: 4096\n');
  const kept = await postMessage(api, all, 'pi-a', { target: 'cfg/interval', data: { ms: 200 }, ttl: 3600 });
  const before = await messageState(api, all, 'pi-a', kept);
  t.match(before, { id: kept, agent: 'pi-a', target: 'cfg/interval', data: { ms: 200 }, state: 'queued', from: 'all' });
  t.equal((before.expiresAt as number) - (before.queuedAt as number), 3_600_000, 'ttl in seconds');
  const bytesId = await postMessage(api, all, 'pi-a', { target: 'raw', dataBase64: Buffer.from([1, 2, 250]).toString('base64') } as never);
  t.same((await messageState(api, all, 'pi-a', bytesId)).data, { base64: 'AQL6' }, 'bytes read back as {base64}');

  const auth = { authorization: `Bearer ${all}` };
  const json = { ...auth, 'content-type': 'application/json' };
  const cases: [string, () => Promise<Raw | { status: number; body: Record<string, unknown>; headers?: Raw['headers'] }>, number, string, RegExp][] = [
    ['unknown agent', () => apiCall(api, all, 'POST', '/v1/agents/pi-nobody/messages', { target: 'x', data: 1 }), 404, ErrorCode.API_AGENT_UNKNOWN, /pi-nobody is not known/],
    ['not an agent ID', () => apiCall(api, all, 'POST', '/v1/agents/a%20b/messages', { target: 'x', data: 1 }), 404, ErrorCode.API_AGENT_UNKNOWN, /agent ID/],
    ['invalid JSON', () => rawCall(api, 'POST', '/v1/agents/pi-a/messages', json, '{"target": "x", "data": '), 400, ErrorCode.API_BODY_INVALID, /not valid JSON/],
    ['not an object', () => rawCall(api, 'POST', '/v1/agents/pi-a/messages', json, '[1]'), 400, ErrorCode.API_BODY_INVALID, /JSON object/],
    ['unknown key', () => apiCall(api, all, 'POST', '/v1/agents/pi-a/messages', { target: 'x', data: 1, priority: 3 }), 400, ErrorCode.API_BODY_INVALID, /unknown key 'priority'/],
    ['bad target', () => apiCall(api, all, 'POST', '/v1/agents/pi-a/messages', { target: 'cfg/#', data: 1 }), 400, ErrorCode.API_BODY_INVALID, /^target: /],
    ['bad ttl', () => apiCall(api, all, 'POST', '/v1/agents/pi-a/messages', { target: 'x', data: 1, ttl: -1 }), 400, ErrorCode.API_BODY_INVALID, /^ttl: /],
    ['data over messageBytesMax', () => apiCall(api, all, 'POST', '/v1/agents/pi-a/messages', { target: 'x', data: 'y'.repeat(1000) }), 413, ErrorCode.API_BODY_TOO_LARGE, /downlink\.messageBytesMax/],
    ['oversize body', () => rawCall(api, 'POST', '/v1/agents/pi-a/messages', json, `{"target": "x", "data": "${'z'.repeat(5000)}"}`), 413, ErrorCode.API_BODY_TOO_LARGE, /limits\.api\.bodyBytesMax/],
    ['not JSON content', () => rawCall(api, 'POST', '/v1/agents/pi-a/messages', { ...auth, 'content-type': 'text/plain' }, 'hello'), 415, ErrorCode.API_BODY_INVALID, /application\/json/],
    ['wrong path', () => apiCall(api, all, 'GET', '/v1/agents/pi-a'), 404, ErrorCode.API_NOT_FOUND, /no such path/],
    ['wrong method', () => rawCall(api, 'DELETE', `/v1/agents/pi-a/messages/${kept}`, auth), 405, ErrorCode.API_METHOD_NOT_ALLOWED, /takes GET/],
    ['unknown state', () => apiCall(api, all, 'GET', '/v1/agents/pi-a/messages?state=gone'), 400, ErrorCode.API_BODY_INVALID, /^state: /],
    ['bad limit', () => apiCall(api, all, 'GET', '/v1/agents/pi-a/messages?limit=-1'), 400, ErrorCode.API_BODY_INVALID, /^limit: /],
    ['unknown message', () => apiCall(api, all, 'GET', '/v1/agents/pi-a/messages/NoSuchMessage'), 404, ErrorCode.API_MESSAGE_UNKNOWN, /NoSuchMessage/],
  ];
  for (const [what, call, status, code, message] of cases) {
    const res = await call();
    t.equal(res.status, status, `${what}: ${status}`);
    t.equal(res.body.code, code, `${what}: ${code}`);
    t.match(res.body.message, message, `${what}: ${String(res.body.message)}`);
  }
  const wrongMethod = await rawCall(api, 'PUT', '/v1/agents/pi-a/messages', auth);
  t.equal(wrongMethod.headers.allow, 'GET, POST', '405 names what is allowed');

  // The queue holds 3: one more fits, the next is refused.
  await postMessage(api, all, 'pi-a', { target: 'third', data: 3 });
  const full = await apiCall(api, all, 'POST', '/v1/agents/pi-a/messages', { target: 'fourth', data: 4 });
  t.equal(full.status, 429);
  t.equal(full.body.code, ErrorCode.QUEUE_FULL);
  t.equal((await postMessage(api, all, 'pi-b', { target: 'x', data: 1 }).then(() => 201)), 201, 'another agent\'s queue is not full');

  const list = await apiCall(api, all, 'GET', '/v1/agents/pi-a/messages?state=queued');
  t.same((list.body.messages as { target: string }[]).map((m) => m.target), ['cfg/interval', 'raw', 'third'], 'exactly what was queued, in order');
  t.same(await messageState(api, all, 'pi-a', kept), before, 'the first message is unchanged');
  t.same((await apiCall(api, all, 'GET', '/v1/agents/pi-a/messages?limit=1')).body.messages, [before], 'limit');
  t.ok(r.port > 0);
});

t.test('downlink api - with auth.required false any valid agent ID may be queued for', async (t) => {
  const { api, all } = await rig(t, 'auth:\n  required: false\n');
  const id = await postMessage(api, all, 'never-registered', { target: 'x', data: 1 });
  t.equal((await messageState(api, all, 'never-registered', id)).state, 'queued');
  t.equal((await apiCall(api, all, 'POST', '/v1/agents/..%2Fx/messages', { target: 'x', data: 1 })).status, 404, 'an invalid ID is still refused');
});

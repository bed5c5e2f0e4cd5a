/**
 * The application API of a real `ferry gateway` process (dist/cli/ferry.js: run `npx tsc -p .`
 * first): a 201 means the message is durable (the gateway SIGKILLed while requests are in
 * flight keeps every message it answered 201 for); applications added and revoked with the CLI
 * count without a restart; with `tls` the API is HTTPS.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { makeRig, waitFor } from '../helpers/ferry.js';
import { addApp, apiCall, gatewayDataDir, messageState } from '../helpers/downlink-api.js';
import { runFerry } from '../helpers/cli-run.js';
import { makeCerts } from '../helpers/certs.js';
import { ErrorCode } from '../../protocol/errors.js';
import { prng, testSeed } from '../helpers/seed.js';

t.test('downlink api - the gateway SIGKILLed with requests in flight keeps every message it answered 201 for', async (t) => {
  const rng = prng(testSeed((m) => t.comment(m)));
  const rig = await makeRig({ agentId: 'pi-a', serial: false, api: true });
  t.teardown(() => rig.cleanup());
  const token = await addApp(gatewayDataDir(rig.dir), 'load');
  const gw = await rig.start('gateway');
  const api = rig.apiPort!;
  const answered: { id: string; n: number }[] = [];
  const total = 300;
  const killAfter = 40 + Math.floor(rng() * 150);
  t.comment(`SIGKILL after ${killAfter} answers`);
  let killed = false;
  // Ten clients at once, each posting in turn: many requests are in the middle of their write when the kill comes.
  const client = async (c: number): Promise<void> => {
    for (let n = c; n < total; n += 10) {
      const r = await apiCall(api, token, 'POST', '/v1/agents/pi-a/messages', { target: `n/${n}`, data: n }).catch(() => null);
      if (!r) return; // the gateway is gone
      if (r.status === 201) answered.push({ id: r.body.id as string, n });
      if (answered.length >= killAfter && !killed) {
        killed = true;
        gw.kill('SIGKILL');
      }
    }
  };
  await Promise.all(Array.from({ length: 10 }, (_, c) => client(c)));
  await gw.exited;
  t.ok(killed && answered.length >= killAfter, `${answered.length} answered 201 before the kill`);
  await rig.start('gateway');
  const missing: number[] = [];
  for (const { id, n } of answered) {
    const m = await messageState(api, token, 'pi-a', id).catch(() => undefined);
    if (!m || m.state !== 'queued' || m.data !== n) missing.push(n);
  }
  t.same(missing, [], 'every message answered 201 is queued after the restart, with its data');
  const list = await apiCall(api, token, 'GET', '/v1/agents/pi-a/messages?limit=1000');
  const ns = (list.body.messages as { data: number }[]).map((m) => m.data);
  t.equal(new Set(ns).size, ns.length, 'none twice');
  t.ok(ns.length <= answered.length + 10, `at most the ten in flight beyond those answered (${ns.length} queued, ${answered.length} answered)`);
});

t.test('downlink api - add-app and revoke-app on a running gateway count without a restart', async (t) => {
  const rig = await makeRig({ agentId: 'pi-a', serial: false, api: true });
  t.teardown(() => rig.cleanup());
  await rig.start('gateway');
  const api = rig.apiPort!;
  const config = join(rig.dir, 'gateway.yaml');
  const added = await runFerry(['gateway', 'add-app', 'late', '--agents', 'pi-a', '--config', config]);
  t.equal(added.code, 0, added.stderr);
  const token = added.stdout.trim();
  const r = await waitFor('the new application to be accepted', async () => {
    const a = await apiCall(api, token, 'POST', '/v1/agents/pi-a/messages', { target: 'x', data: 1 });
    return a.status === 401 ? undefined : a;
  }, 10_000);
  t.equal(r.status, 201, 'its token works');
  t.equal((await apiCall(api, token, 'GET', '/v1/agents/it-agent/messages')).status, 403, 'within its limit only');
  const revoked = await runFerry(['gateway', 'revoke-app', 'late', '--config', config]);
  t.equal(revoked.code, 0, revoked.stderr);
  const after = await waitFor('the revocation', async () => {
    const a = await apiCall(api, token, 'GET', '/v1/agents/pi-a/messages');
    return a.status === 401 ? a : undefined;
  }, 10_000);
  t.equal(after.body.code, ErrorCode.API_AUTH_FAILED, 'the revoked token is refused');
});

t.test('downlink api - with tls files the API is HTTPS', async (t) => {
  const rig0 = t.testdir();
  const certs = makeCerts(rig0);
  const rig = await makeRig({ agentId: 'pi-a', serial: false, api: true, gatewayYaml: `tls:\n  cert: ${certs.main.gateway.cert}\n  key: ${certs.main.gateway.key}\n` });
  t.teardown(() => rig.cleanup());
  const token = await addApp(gatewayDataDir(rig.dir), 'secure');
  const gw = await rig.start('gateway');
  await waitFor('the API URL printed', async () => (/ferry gateway api listening on https:\/\/127\.0\.0\.1:\d+/.test(gw.output()) ? true : undefined));
  const body = Buffer.from(JSON.stringify({ target: 'x', data: 'over tls' }));
  const res = await new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
    httpsRequest({
      host: '127.0.0.1', port: rig.apiPort!, method: 'POST', path: '/v1/agents/pi-a/messages', ca: readFileSync(certs.main.ca), agent: false,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': body.length },
    }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => resolve({ status: r.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown> }));
    }).on('error', reject).end(body);
  });
  t.equal(res.status, 201, 'queued over HTTPS, the gateway certificate verified');
  const plain = await apiCall(rig.apiPort!, token, 'GET', '/v1/agents/pi-a/messages').then((r) => r.status, (err: Error) => err.message);
  t.not(plain, 200, 'plain HTTP gets no answer');
});

/**
 * `ferry gateway revoke-app` while the application has a POST in progress: the API checks the token
 * when the headers arrive and again once the body is in (gateway/downlink/api.ts post), so a client
 * that trickles its body for up to limits.api.requestTimeoutMs after its token was revoked gets 401
 * and nothing is queued. Found by the security review (issue 10 case 8 on a new surface: a
 * revocation ends what the old credential holds); fixed in 256dcff.
 */
import t from 'tap';
import { request } from 'node:http';
import { listenApi } from '../../gateway/downlink/api.js';
import { LogSummary } from '../../gateway/log-summary.js';
import { createLog } from '../../common/log.js';
import { realClock } from '../../common/clock.js';
import type { AppEntry } from '../../gateway/apps.js';
import { MemoryDownlink } from '../helpers/memory-downlink.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('api - a POST whose application is revoked before its body arrived is not queued', async (t) => {
  const apps = new Map<string, AppEntry>([['tok-ops', { name: 'ops', revoked: false, addedAt: 0 }]]);
  const log = createLog({ write: () => undefined });
  const summary = new LogSummary({ log, clock: realClock, intervalMs: 60_000 });
  const queues = new MemoryDownlink();
  const api = await listenApi({
    listen: '127.0.0.1:0', queues, log, summary,
    apps: { byToken: (tok) => apps.get(tok) },
    agentKnown: () => true,
    limits: { bodyBytesMax: 4096, requestTimeoutMs: 10_000, requestsInFlightMax: 100, messageBytesMax: 1024, dataDepthMax: 8 },
  });
  t.teardown(async () => {
    await api.close(100);
    summary.close();
  });
  const body = Buffer.from(JSON.stringify({ target: 'cmd/reboot', data: 'now' }));
  const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port: api.port, method: 'POST', path: '/v1/agents/pi-a/messages',
      headers: { authorization: 'Bearer tok-ops', 'content-type': 'application/json', 'content-length': body.length },
    }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.flushHeaders();
    req.write(body.subarray(0, 5));
    // The operator revokes the application (the registry's reload within a second).
    void sleep(300).then(() => {
      apps.delete('tok-ops');
      return sleep(300);
    }).then(() => req.end(body.subarray(5)));
  });
  const r = await answer;
  t.equal(r.status, 401, `a revoked application's POST was answered ${r.status} ${r.text}`);
  t.equal(queues.list('pi-a').length, 0, 'nothing is queued in the revoked application\'s name');
});

/** The downlink as gateway/main.ts wires it, in this process: the API's port and URL, stats().downlink, a restart keeping the queue. */
import t from 'tap';
import { join } from 'node:path';
import { runGateway } from '../../gateway/main.js';
import { gatewayConfigSchema } from '../../gateway/config.js';
import { AppRegistry } from '../../gateway/apps.js';
import { AgentRegistry } from '../../gateway/agents.js';
import { silentLog } from '../../common/log.js';
import { apiCall, postMessage } from '../helpers/downlink-api.js';

t.test('downlink main - ports.api, apiUrl and stats().downlink; the queue outlives a restart', async (t) => {
  const dir = t.testdir();
  const dataDir = join(dir, 'gw');
  const agents = await AgentRegistry.open(dataDir, { watchIntervalMs: 0 });
  await agents.add('pi-1');
  agents.close();
  const apps = await AppRegistry.open(dataDir, { watchIntervalMs: 0 });
  const token = await apps.add('app');
  apps.close();
  const config = gatewayConfigSchema.parse({
    listen: { tcp: '127.0.0.1:0', api: '127.0.0.1:0', admin: '127.0.0.1:0' }, dataDir,
    routes: [{ match: '#', handler: 'file', path: join(dir, 'out.jsonl') }],
  });
  const gw = await runGateway(config, { log: silentLog });
  let stopped = false;
  t.teardown(() => (stopped ? undefined : gw.stop()));
  const api = gw.ports.api!;
  t.ok(api > 0, 'ports.api');
  t.equal(gw.apiUrl, `http://127.0.0.1:${api}`);
  const id = await postMessage(api, token, 'pi-1', { target: 'cfg', data: 1 });
  t.equal((await apiCall(api, token, 'POST', '/v1/agents/pi-1/messages', { target: 'x' })).status, 400);
  const s = gw.stats().downlink;
  t.match(s, { enqueued: 1, queued: 1, api: { queued: 1, refused: { API_BODY_INVALID: 1 } } });
  t.ok(s.syncs > 0, 'the queue synced');
  t.equal(s.mqtt, undefined, 'no subscription configured');
  await gw.stop();
  stopped = true;

  const again = await runGateway(config, { log: silentLog });
  t.teardown(() => again.stop());
  const r = await apiCall(again.ports.api!, token, 'GET', `/v1/agents/pi-1/messages/${id}`);
  t.equal(r.status, 200);
  t.equal(r.body.state, 'queued', 'still queued after the restart');
  t.equal(again.stats().downlink.queued, 1);
});

/**
 * Downlink to a fleet: 1,000 messages to 100 agents, posted by 10 applications at once through
 * the real gateway process's API. Every message arrives, exactly once, at the agent it was posted
 * for, in the order each agent's messages were posted (each application posts to its own ten
 * agents in turn, so an agent's messages come from one application, one after another).
 *
 * The 100 agents are the agent's own Link, store, DownlinkInbox and durable answered log (the
 * code `ferry agent` runs), hosted in this test process over real TCP connections to the gateway
 * process: 100 agent processes would not fit the test machine's two cores beside the gateway.
 * Each agent's consumer records what it is handed; the API's states are checked too.
 */
import t from 'tap';
import { join } from 'node:path';
import { realClock } from '../../common/clock.js';
import { realFiles } from '../../common/real-files.js';
import { createLog } from '../../common/log.js';
import { Link } from '../../agent/link/link.js';
import { tcpDialer } from '../../agent/link/tcp.js';
import { SegmentStore } from '../../agent/store/segment-store.js';
import { DownlinkInbox } from '../../agent/downlink/inbox.js';
import { DurableAnsweredLog } from '../../agent/downlink/answered-log.js';
import type { DownlinkMessage } from '../../agent/downlink/consumer.js';
import { AgentRegistry } from '../../gateway/agents.js';
import { packetLimitsDefault } from '../../protocol/limits.js';
import { makeRig, waitFor } from '../helpers/ferry.js';
import { addApp, apiCall, gatewayDataDir, postMessage } from '../helpers/downlink-api.js';

const agentsN = 100;
const appsN = 10;
const perAgent = 10;

t.test('downlink fleet - 1,000 messages to 100 agents from 10 concurrent applications: all arrive, once, at the right agent, in order', async (t) => {
  const rig = await makeRig({ agentId: 'unused', serial: false, api: true, gatewayYaml: 'limits:\n  sessionsPerAddressPerSecondMax: 500\n  connectionsPerAddressMax: 500\n' });
  t.teardown(() => rig.cleanup());
  const gwDir = gatewayDataDir(rig.dir);
  const agentIds = Array.from({ length: agentsN }, (_, i) => `fleet-${String(i).padStart(3, '0')}`);
  const registry = await AgentRegistry.open(gwDir, { watchIntervalMs: 0 });
  const tokens = new Map<string, string>();
  for (const id of agentIds) tokens.set(id, await registry.add(id));
  registry.close();
  // Application k may reach its ten agents only.
  const appTokens: string[] = [];
  for (let k = 0; k < appsN; k++) appTokens.push(await addApp(gwDir, `app-${k}`, agentIds.slice(k * (agentsN / appsN), (k + 1) * (agentsN / appsN))));
  await rig.start('gateway');

  const log = createLog({ level: 'error' });
  const handed = new Map<string, DownlinkMessage[]>();
  const stops: (() => Promise<void>)[] = [];
  t.teardown(async () => {
    for (const stop of stops) await stop();
  });
  for (const id of agentIds) {
    const dir = join(rig.dir, 'agents', id);
    const store = await SegmentStore.open({ dir: join(dir, 'store'), sync: 'none' });
    const answered = await DurableAnsweredLog.open({ dir: join(dir, 'downlink'), files: realFiles, idsMax: 4096, log });
    const mine: DownlinkMessage[] = [];
    handed.set(id, mine);
    const inbox = new DownlinkInbox({ messagesMax: 8, bytesMax: 64 * 1024, limits: packetLimitsDefault }, {
      route: () => ({ deliver: async (m) => (mine.push(m), { ok: true }) }), answered, clock: realClock, log,
    });
    const link = new Link({
      agentId: id, token: tokens.get(id)!, inflightPacketsMax: 64, framePacketsMax: 64, frameBytesMax: 64 * 1024, retryPacketsMax: 64, retryBytesMax: 1 << 20,
      reconnectDelayMsMin: 50, reconnectDelayMsMax: 500, helloTimeoutMs: 5000, pingIntervalMs: 5000, peerTimeoutMs: 20_000,
    }, { store, dial: tcpDialer(`tcp://127.0.0.1:${rig.port}`), clock: realClock, rng: Math.random, log, downlink: inbox });
    link.start();
    stops.push(async () => {
      await link.stop();
      await inbox.close();
      await answered.close();
      await store.close();
    });
  }

  // Each application posts its agents' messages one agent after another, all applications at once.
  const posted = new Map<string, string[]>();
  await Promise.all(appTokens.map(async (token, k) => {
    for (let n = 0; n < perAgent; n++) {
      for (const agent of agentIds.slice(k * (agentsN / appsN), (k + 1) * (agentsN / appsN))) {
        const id = await postMessage(rig.apiPort!, token, agent, { target: 'fleet/cmd', data: { for: agent, n } });
        posted.set(agent, [...(posted.get(agent) ?? []), id]);
      }
    }
  }));
  t.equal([...posted.values()].flat().length, agentsN * perAgent, '1,000 messages queued');

  await waitFor('every message handed to a consumer', async () => ([...handed.values()].reduce((n, l) => n + l.length, 0) >= agentsN * perAgent ? true : undefined), 60_000);
  let wrongAgent = 0;
  let outOfOrder = 0;
  let twice = 0;
  for (const agent of agentIds) {
    const got = handed.get(agent)!;
    wrongAgent += got.filter((m) => (m.data as { for: string }).for !== agent).length;
    twice += got.length - new Set(got.map((m) => m.id)).size;
    if (JSON.stringify(got.map((m) => m.id)) !== JSON.stringify(posted.get(agent))) outOfOrder++;
  }
  t.equal(wrongAgent, 0, 'no message reached an agent it was not posted for');
  t.equal(twice, 0, 'no message reached a consumer twice');
  t.equal(outOfOrder, 0, 'every agent got exactly its messages, in the order posted');
  // And the applications see them acked.
  await waitFor('every message acked in the API', async () => {
    let acked = 0;
    for (const [k, token] of appTokens.entries()) {
      for (const agent of agentIds.slice(k * (agentsN / appsN), (k + 1) * (agentsN / appsN))) {
        const r = await apiCall(rig.apiPort!, token, 'GET', `/v1/agents/${agent}/messages?state=acked`);
        acked += (r.body.messages as unknown[] | undefined)?.length ?? 0;
      }
    }
    return acked === agentsN * perAgent ? true : undefined;
  }, 30_000);
  t.pass('all 1,000 acked in the API');
});

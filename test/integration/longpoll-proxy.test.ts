/**
 * HTTPS long-poll through a real forward proxy (issue 11): tinyproxy, which the test starts, and an
 * agent that reaches the gateway's `listen.https` only through it, by `HTTPS_PROXY` (CONNECT). A
 * producer streams packets for several targets; the gateway is SIGKILLed mid-stream and started
 * again, and so is the agent. Every packet the agent accepted reaches the file exactly once, in
 * order per target, and the proxy's log shows the agent's CONNECTs to the gateway.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { makeCerts } from '../helpers/certs.js';
import { makeRig, waitFor } from '../helpers/ferry.js';
import { freePort } from '../helpers/free-port.js';
import { checkExactlyOnceInOrder, startProducer } from '../helpers/stream.js';
import { startTinyproxy } from '../helpers/tinyproxy.js';

t.test('proxy - HTTPS long-poll through tinyproxy by HTTPS_PROXY, with the gateway and the agent SIGKILLed mid-stream: every packet once, in order', async (t) => {
  const certDir = await mkdtemp(join(tmpdir(), 'ferry-lp-certs-'));
  t.teardown(() => rm(certDir, { recursive: true, force: true }));
  const certs = makeCerts(certDir);
  const httpsPort = await freePort();
  const proxy = await startTinyproxy({ connectPorts: [httpsPort] });
  t.teardown(() => proxy.stop());

  const env: NodeJS.ProcessEnv = { ...process.env, HTTPS_PROXY: proxy.url, https_proxy: proxy.url, NO_PROXY: '', no_proxy: '' };
  delete env.NODE_OPTIONS;
  const rig = await makeRig({
    agentId: 'proxied', serial: false, https: httpsPort,
    gatewayYaml: `tls:\n  cert: ${certs.main.gateway.cert}\n  key: ${certs.main.gateway.key}\n`,
    agentGateway: 'https://127.0.0.1:{https}',
    agentYaml: `tls:\n  ca: ${certs.main.ca}\n`,
    agentLink: { reconnectDelayMsMin: 50, reconnectDelayMsMax: 500, peerTimeoutMs: 2000, pingIntervalMs: 300 },
    agentEnv: env,
  });
  t.teardown(() => rig.cleanup());
  const gateway = await rig.start('gateway');
  let agent = await rig.start('agent');
  const targets = ['p/a', 'p/b', 'p/c'];
  const producer = startProducer(rig, targets, { pauseMs: 5 });
  t.teardown(() => producer.stop());

  const delivered = (n: number) => waitFor(`${n} packets in the file`, async () => ((await rig.lines()).length >= n ? true : undefined), 30_000);
  await delivered(300);
  gateway.child.kill('SIGKILL');
  await gateway.exited;
  await rig.start('gateway');
  await delivered((await rig.lines()).length + 300);
  agent.child.kill('SIGKILL');
  await agent.exited;
  agent = await rig.start('agent');
  await delivered((await rig.lines()).length + 300);
  await producer.stop();

  const connects = proxy.log().split('\n').filter((l) => l.includes(`CONNECT 127.0.0.1:${httpsPort}`));
  t.ok(connects.length >= 2, `the agent's CONNECTs to the gateway went through the proxy (${connects.length} in its log), before and after the kills`);
  t.ok(producer.accepted.size >= 900, `the agent accepted ${producer.accepted.size} packets`);
  await checkExactlyOnceInOrder(t, rig, agent, producer.accepted, targets);
});

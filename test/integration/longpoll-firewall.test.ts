/**
 * A real firewall (issue 11): a network namespace of the test's own, with the real `ferry gateway`
 * and `ferry agent` inside it and nftables rules in it. The agent's `gateway` is a list, TCP
 * tunnel first, HTTP long-poll second, while a producer keeps packets for several targets
 * flowing:
 * 1. the TCP tunnel port is dropped before the agent starts: it falls back to long-poll by itself;
 * 2. the rule is lifted: it probes the TCP tunnel and moves back to it;
 * 3. the TCP port is dropped again mid-stream (the open tunnel goes silent): back to long-poll;
 * 4. then, at once, HTTP is dropped and TCP passes again: it moves to the TCP tunnel.
 * Every packet the agent accepted reaches the file exactly once, in seq order per target.
 * Needs root, iproute2 and nftables (scripts/bootstrap.sh test installs them).
 */
import t from 'tap';
import type { AgentStats } from '../../agent/main.js';
import { createNetns, type NetNs } from '../helpers/netns.js';
import { makeRig, waitFor, type Rig } from '../helpers/ferry.js';
import { freePort } from '../helpers/free-port.js';
import { checkExactlyOnceInOrder, startProducer, type Producer } from '../helpers/stream.js';

/** Waits until the agent is connected over `scheme` and has since stored and delivered more packets. */
async function deliversOver(rig: Rig, scheme: 'tcp' | 'http', what: string, msMax = 40_000): Promise<AgentStats> {
  const start = await rig.agentStats();
  const from = start?.ackedSeq ?? 0;
  return waitFor(what, async () => {
    const s = await rig.agentStats();
    return s && s.link === 'connected' && s.gateway?.startsWith(`${scheme}://`) && s.ackedSeq > from + 20 ? s : undefined;
  }, msMax);
}

t.test('firewall - the agent falls back to long-poll when the TCP tunnel port is dropped, moves back when it passes, and loses nothing', async (t) => {
  let ns: NetNs | undefined;
  let rig: Rig | undefined;
  let producer: Producer | undefined;
  // Processes first, then the namespace they run in.
  t.teardown(async () => {
    await producer?.stop();
    await rig?.cleanup();
    await ns?.delete();
  });
  ns = await createNetns();
  const tcpPort = await freePort();
  const httpPort = await freePort();
  rig = await makeRig({
    agentId: 'walled', serial: false, port: tcpPort, http: httpPort,
    agentGateway: '[tcp://127.0.0.1:{tcp}, http://127.0.0.1:{http}]',
    agentLink: { reconnectDelayMsMin: 50, reconnectDelayMsMax: 500, connectTimeoutMs: 1000, fallbackAfterMs: 1500, probeIntervalMs: 2000, peerTimeoutMs: 1500, pingIntervalMs: 300 },
    gatewayYaml: 'limits:\n  pingIntervalMs: 300\n  peerTimeoutMs: 1500\n',
    wrap: ['ip', 'netns', 'exec', ns.name],
  });

  await ns.firewall({ blockTcpPorts: [tcpPort], passTcpPorts: [httpPort] });
  t.match(await ns.ruleset(), new RegExp(`dport ${tcpPort} .*drop`), 'the namespace drops the TCP tunnel port');
  await rig.start('gateway');
  const agent = await rig.start('agent');
  const targets = ['a/x', 'a/y', 'b'];
  producer = startProducer(rig, targets, { pauseMs: 10 });

  const s1 = await deliversOver(rig, 'http', 'delivery over long-poll with the TCP port dropped');
  t.equal(s1.gateway, `http://127.0.0.1:${httpPort}`, '1: fell back to long-poll by itself');

  await ns.clearFirewall();
  const s2 = await deliversOver(rig, 'tcp', 'delivery over the TCP tunnel once the rule is lifted');
  t.equal(s2.gateway, `tcp://127.0.0.1:${tcpPort}`, '2: moved back to the TCP tunnel');

  await ns.firewall({ blockTcpPorts: [tcpPort], passTcpPorts: [httpPort] });
  await deliversOver(rig, 'http', 'delivery over long-poll after the TCP port was dropped mid-stream');
  t.pass('3: the TCP port dropped mid-stream: back on long-poll');

  await ns.firewall({ blockTcpPorts: [httpPort], passTcpPorts: [tcpPort] });
  await deliversOver(rig, 'tcp', 'delivery over the TCP tunnel after HTTP was dropped and TCP passed again');
  t.pass('4: HTTP dropped and TCP passing, mid-stream: on the TCP tunnel');

  await ns.clearFirewall();
  await producer.stop();
  t.ok(producer.accepted.size > 100, `the agent accepted ${producer.accepted.size} packets across the switches`);
  await checkExactlyOnceInOrder(t, rig, agent, producer.accepted, targets);
});

/**
 * One seeded fault-proxy run against real agent and gateway processes (test/integration/faults
 * and longpoll-faults): see those files.
 */
import type { Test } from 'tap';
import { idleSocketMs } from '../../agent/link/http-post.js';
import { requestPolicyDefault } from '../../protocol/longpoll/request-policy.js';
import { startFaultProxy, type ProxiedConnection } from './fault-proxy.js';
import { makeRig, sleep } from './ferry.js';
import { freePort } from './free-port.js';
import { prng, testSeed } from './seed.js';
import { checkExactlyOnceInOrder, startProducer } from './stream.js';

/** A connection the fault left alone (clean, or a stall that ended) is cut by the test after this long. */
const roundMsMax = 400;

/**
 * One run: the fault proxy sits in front of the gateway's TCP tunnel port (`tcp`) or its HTTP
 * long-poll port (`http`: every keep-alive connection of the agent's HTTP client gets a fault, so
 * requests and responses are cut, stalled or black-holed, often mid-body).
 */
export async function faultRun(t: Test, carrier: 'tcp' | 'http', rounds: number): Promise<void> {
  const seed = testSeed((m) => t.comment(m));
  const rng = prng(seed);
  const gatewayPort = await freePort();
  const httpPort = await freePort();
  const proxy = await startFaultProxy({
    target: { host: '127.0.0.1', port: carrier === 'tcp' ? gatewayPort : httpPort }, rng,
    weights: { clean: 1, cut: 3, stall: 2, blackhole: 1 },
    onsetMsMax: 300, onsetBytesMax: 8192, stallMsMin: 20, stallMsMax: 600,
  });
  t.teardown(() => proxy.close());
  const rig = await makeRig({
    agentId: 'faulty', serial: false, port: gatewayPort, http: httpPort,
    agentGateway: carrier === 'tcp' ? `tcp://127.0.0.1:${proxy.port}` : `http://127.0.0.1:${proxy.port}`,
    agentLink: { reconnectDelayMsMin: 10, reconnectDelayMsMax: 100, helloTimeoutMs: 700, peerTimeoutMs: 700, pingIntervalMs: 100, inflightPacketsMax: 256, framePacketsMax: 32 },
    gatewayYaml: 'limits:\n  pingIntervalMs: 100\n  peerTimeoutMs: 700\n  helloTimeoutMs: 700\n',
  });
  t.teardown(() => rig.cleanup());
  await rig.start('gateway');
  const agent = await rig.start('agent');

  const targets = ['a/x', 'a/y', 'b', 'c/z/w'];
  const producer = startProducer(rig, targets);

  const kinds = new Map<string, number>();
  for (let round = 0; round < rounds; round++) {
    const conn: ProxiedConnection = await proxy.nextConnection();
    kinds.set(conn.fault.kind, (kinds.get(conn.fault.kind) ?? 0) + 1);
    // A cut ends the connection itself and a blackhole is noticed by a peer's time-out (the
    // agent dials again); a clean link or a stall is cut here once it carried traffic a while.
    // Over HTTP the agent gives a silent socket up when it is idle for idleSocketMs, or when a request on it is taken as lost (answerTimeoutMs).
    const limitMs = conn.fault.kind !== 'blackhole' ? roundMsMax : carrier === 'tcp' ? 5000 : idleSocketMs + requestPolicyDefault.answerTimeoutMs + 1000;
    let until = Date.now() + limitMs;
    // A keep-alive HTTP socket may carry little after its accept: its black hole is timed from the onset.
    let timedFromOnset = carrier === 'tcp' || conn.fault.kind !== 'blackhole';
    let noticed = false;
    while (Date.now() < until) {
      if (!timedFromOnset && conn.phase !== 'pending') {
        timedFromOnset = true;
        until = Date.now() + limitMs;
      }
      // A new tunnel connection means the agent gave this one up; the HTTP client keeps several at once.
      if (carrier === 'tcp' && proxy.connections.length > conn.index + 1) {
        noticed = true;
        break;
      }
      // Over HTTP the gateway's side of a black hole stays open (a held request, then keep-alive): the agent's side is what notices.
      if (await Promise.race([(carrier === 'tcp' ? conn.closed : conn.clientClosed).then(() => true), sleep(20).then(() => false)])) {
        noticed = true;
        break;
      }
    }
    // Nothing passes a black hole, so only a peer's ping time-out can end it (or make the agent dial again).
    if (conn.fault.kind === 'blackhole' && timedFromOnset) t.ok(noticed, `round ${round}: a peer noticed the black hole within ${limitMs} ms`);
    conn.destroy();
  }
  proxy.setMode('clean');
  // Faults over: whatever connection is open now (or the next one) stays clean.
  for (const c of proxy.connections) if (c.fault.kind !== 'clean') c.destroy();
  await producer.stop();
  const { accepted } = producer;
  t.comment(`faults chosen: ${[...kinds].map(([k, n]) => `${k}=${n}`).join(' ')}; applied: ${JSON.stringify(proxy.stats.applied)}`);
  t.ok(accepted.size > 500, `the agent accepted ${accepted.size} packets during the faults`);

  await checkExactlyOnceInOrder(t, rig, agent, accepted, targets);
}


import t from 'tap';
import { join } from 'node:path';
import { localRequest } from '../../agent/local-api.js';
import type { AgentStatus } from '../../agent/status.js';
import { stopProcess } from '../../cli/proc.js';
import { runFerry } from '../helpers/cli-run.js';
import { makeRig, waitFor } from '../helpers/ferry.js';

t.test('ferry status - shows the backlog while the gateway is down, then the link and an empty backlog once it drained', async (t) => {
  // The gateway PINGs often, so the RTT is measured within the test.
  const rig = await makeRig({ agentId: 'status-1', serial: false, gatewayYaml: 'limits:\n  pingIntervalMs: 200\n' });
  t.teardown(() => rig.cleanup());
  const config = join(rig.dir, 'agent.yaml');
  const agent = await rig.start('agent');
  const sent = 7;
  for (let i = 0; i < sent; i++) {
    const r = await localRequest(rig.socket, { op: 'send', target: 'status/x', data: { i, pad: 'p'.repeat(100) } });
    t.ok(r.ok, `packet ${i} stored`);
  }

  const down = await runFerry(['status', '--config', config, '--json']);
  t.equal(down.code, 0, `status exits 0 (${down.stderr})`);
  const d = JSON.parse(down.stdout) as AgentStatus;
  t.equal(d.agent, 'status-1');
  t.equal(d.link.up, false, 'link down');
  t.equal(d.link.transport, null, 'no transport while down');
  t.match(d.link.error, /ECONNREFUSED/, 'and why');
  t.equal(d.backlog.packets, sent, 'backlog = packets sent');
  t.ok(d.backlog.bytes > sent * 100, `backlog bytes ${d.backlog.bytes} cover the packets`);
  t.ok(d.backlog.oldestAgeMs !== null && d.backlog.oldestAgeMs >= 0, 'the oldest packet has an age');
  t.equal(d.totals.stored, sent);
  t.equal(d.store.capacityBytes, 256 * 2 ** 20, 'the default capacity');
  t.ok(d.store.usedBytes > 0 && d.store.usedBytes <= d.store.capacityBytes, 'store use within capacity');

  const readableDown = await runFerry(['status', '--socket', rig.socket]);
  t.equal(readableDown.code, 0);
  t.match(readableDown.stdout, /^link\s+down \(/m, 'readable: link down');
  t.match(readableDown.stdout, new RegExp(`^backlog\\s+${sent} packets, [\\d.]+ (B|KiB), oldest \\d+(ms|s)`, 'm'), 'readable: the backlog with units and age');
  t.match(readableDown.stdout, /^store\s+[\d.]+ (B|KiB) of 256 MiB/m, 'readable: store use against capacity');

  await rig.start('gateway');
  const up = await waitFor('backlog drained and an RTT measured', async () => {
    const r = await runFerry(['status', '--config', config, '--json']);
    const s = JSON.parse(r.stdout) as AgentStatus;
    return s.link.up && s.backlog.packets === 0 && s.inflight === 0 && s.link.rttMs !== null ? s : undefined;
  });
  t.equal(up.link.transport, 'tcp', 'link shows the transport');
  t.equal(up.link.gateway, `tcp://127.0.0.1:${rig.port}`, 'and the gateway');
  t.equal(up.backlog.oldestAgeMs, null, 'no oldest packet');
  t.equal(up.totals.acked, sent, 'every packet acked');
  t.ok(up.rate.storedPerS > 0, `a stored rate over the last ${up.rate.overS} s`);
  t.equal((await rig.lines()).length, sent, 'and delivered');

  const readableUp = await runFerry(['status', '--config', config]);
  t.match(readableUp.stdout, new RegExp(`^link\\s+up \\(tcp\\) tcp://127\\.0\\.0\\.1:${rig.port}  rtt \\d+ ms`, 'm'), 'readable: link up, transport, RTT');
  t.match(readableUp.stdout, /^backlog\s+0 packets, 0 B$/m, 'readable: empty backlog');
  t.match(readableUp.stdout, new RegExp(`^totals\\s+stored ${sent}, acked ${sent} since start`, 'm'));

  await stopProcess(agent);
  const gone = await runFerry(['status', '--config', config]);
  t.equal(gone.code, 3, 'exit code 3 when the agent is not running');
  t.equal(gone.stdout, '');
  t.match(gone.stderr, `agent not running: no socket at ${rig.socket} [AGENT_UNREACHABLE]`, 'says so, naming the socket');
});

t.test('ferry status - a missing serial device shows as retrying with why; a gateway config goes to the gateway status', async (t) => {
  // The rig's source names a device that exists only once the simulator runs: it is not started.
  const rig = await makeRig({ agentId: 'status-2' });
  t.teardown(() => rig.cleanup());
  await rig.start('agent');
  const src = await waitFor('the source retrying', async () => {
    const s = JSON.parse((await runFerry(['status', '--socket', rig.socket, '--json'])).stdout) as AgentStatus;
    return s.sources[0]?.state === 'retrying' ? s.sources[0] : undefined;
  });
  t.match(src, { name: 'sensor', path: rig.device, lines: 0 });
  t.match(src.error, /no such file|ENOENT|cannot open/i, `the error says why: ${src.error}`);
  const readable = await runFerry(['status', '--socket', rig.socket]);
  t.match(readable.stdout, /^sources\s+sensor  retrying \(.+\)  0 lines/m, 'readable: the source and its state');
  const gw = await runFerry(['status', '--config', join(rig.dir, 'gateway.yaml')]);
  t.not(gw.code, 0);
  t.match(gw.stderr, /gateway status/, 'a gateway config is handed to the gateway status');
  const none = await runFerry(['status']);
  t.equal(none.code, 1);
  t.match(none.stderr, /give --config AGENT_CONFIG or --socket PATH/);
  const help = await runFerry(['status', '--help']);
  t.match(help.stdout, /--gateway URL/, 'help covers the gateway');
  t.match(help.stdout, /--socket PATH/, 'and the agent');
});

/**
 * A route whose broker is down (issue 13, logs): a real gateway with an mqtt route to a port where
 * mosquitto is not running yet, a real agent sending 12 packets. The gateway logs the cause once
 * at warn with its code (ECONNREFUSED), then summaries bounded by time, not a line per packet per
 * retry (136 lines in 2 minutes before); once mosquitto starts, every packet is delivered and the
 * log says the cause cleared.
 */
import t from 'tap';
import { localRequest } from '../../agent/local-api.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { freePort } from '../helpers/free-port.js';
import { makeRig, sleep, waitFor } from '../helpers/ferry.js';

interface Line { level?: string; msg?: string; code?: string; route?: number; count?: number; summary?: boolean; error?: string; url?: string }

/** The gateway's JSON log lines (stdout's plain lines, such as the ready line, are skipped). */
function jsonLines(output: string): Line[] {
  return output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
}

t.test('stuck broker - a broker that is down is logged once with its code, summarised, then cleared; every packet arrives', async (t) => {
  const brokerPort = await freePort();
  const summaryIntervalMs = 2000;
  const rig = await makeRig({
    agentId: 'stuck-agent',
    serial: false,
    routes: `  - match: "sensors/#"\n    handler: mqtt\n    url: mqtt://127.0.0.1:${brokerPort}\n    topic: "ferry/{agent}/{target}"\n`,
    gatewayYaml: `log:\n  stuckSummaryIntervalMs: ${summaryIntervalMs}\n`,
  });
  t.teardown(() => rig.cleanup());
  const startedMs = Date.now();
  const gateway = await rig.start('gateway');
  await rig.start('agent');
  for (let i = 0; i < 12; i++) {
    const r = await localRequest(rig.socket, { op: 'send', target: `sensors/s${i % 3}`, data: { i } });
    t.ok(r.ok, `packet ${i} stored`);
  }

  await sleep(10_000);
  const elapsedMs = Date.now() - startedMs;
  const routeLines = jsonLines(gateway.output()).filter((l) => l.route === 0 || l.msg?.startsWith('session: handler failed') || l.msg?.startsWith('mqtt handler'));
  t.comment(`${routeLines.length} lines about the route in ${elapsedMs} ms: ${routeLines.map((l) => l.msg).join(' | ')}`);
  const first = routeLines[0];
  t.equal(first?.level, 'warn', 'the first line about the route is a warning');
  t.equal(first?.code, 'ECONNREFUSED', 'and says why: the broker refused the connection');
  t.match(first?.url, new RegExp(`^mqtt://127\\.0\\.0\\.1:${brokerPort}$`), 'it names the broker (redacted URL)');
  const starts = routeLines.filter((l) => l.summary !== true);
  t.same(starts.map((l) => l.code).sort(), ['ECONNREFUSED', 'HANDLER_FAILED'], 'one start line per cause: the connection and the dispatch');
  const summaries = routeLines.filter((l) => l.msg?.endsWith('(summary)'));
  t.ok(summaries.length >= 1, 'a summary line was written');
  // Two causes, each one start line and at most one summary per interval since the gateway started.
  const bound = 2 * (1 + Math.ceil(elapsedMs / summaryIntervalMs));
  t.ok(routeLines.length <= bound, `the lines are bounded by time (${routeLines.length} <= ${bound}), not by packets and retries`);
  const attempts = Math.max(...summaries.filter((l) => l.code === 'HANDLER_FAILED').map((l) => (l as { total?: number }).total ?? 0));
  t.comment(`${attempts} failed dispatch attempts so far`);
  t.ok(attempts > routeLines.length, 'the summaries count more failed attempts than there are lines');

  const broker = await startMosquitto({ port: brokerPort });
  t.teardown(() => broker.stop());
  const stats = await waitFor('all 12 packets acked (the gateway acks after the PUBACK)', async () => {
    const s = await rig.agentStats();
    return s && s.acked === 12 && s.backlog === 0 ? s : undefined;
  }, 60_000);
  t.equal(stats.deadLetters, 0, 'none became a dead letter');
  const cleared = await waitFor('a cleared line', async () => jsonLines(gateway.output()).find((l) => l.msg?.endsWith('(cleared)') && l.code === 'HANDLER_FAILED'));
  t.equal(cleared.level, 'info', 'the cause cleared, at info');
  t.ok(jsonLines(gateway.output()).some((l) => l.msg?.endsWith('(cleared)') && l.code === 'ECONNREFUSED'), 'the connection cause cleared too');
});

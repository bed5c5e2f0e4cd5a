/**
 * An authenticated agent cannot flood the gateway's log with packets a handler refuses: each is
 * NACKed, but the log says so through the log summary (the first whole, then a count per
 * interval), not a line per packet. A real gateway (gateway/main.ts in-process); the refusing
 * handler is an mqtt route whose `ferry/{target}` reaches the gateway's own downlink subscription
 * (refused before any broker is needed, so the broker URLs lead nowhere).
 */
import t from 'tap';
import { join } from 'node:path';
import { createLog } from '../../common/log.js';
import { AgentRegistry } from '../../gateway/agents.js';
import { gatewayConfigSchema } from '../../gateway/config.js';
import { runGateway } from '../../gateway/main.js';
import { FrameType, type Frame } from '../../protocol/frames.js';
import { sayHello } from '../helpers/hello.js';
import { pollUntil } from '../helpers/wait.js';

t.test('gateway log - 500 packets a handler rejects for good cost a bounded number of log lines', async (t) => {
  const dir = t.testdir();
  const dataDir = join(dir, 'gw');
  const registry = await AgentRegistry.open(dataDir, { watchIntervalMs: 0 });
  const token = await registry.add('pi-flood');
  registry.close();
  const raw: string[] = [];
  const nowhere = 'mqtt://127.0.0.1:1';
  const gw = await runGateway(gatewayConfigSchema.parse({
    listen: { tcp: '127.0.0.1:0', admin: '127.0.0.1:0' }, dataDir,
    routes: [{ match: '#', handler: 'mqtt', url: nowhere, topic: 'ferry/{target}' }],
    downlink: { mqtt: { url: nowhere } },
    log: { summaryIntervalMs: 60_000 },
  }), { log: createLog({ write: (l) => raw.push(l) }) });
  t.teardown(() => gw.stop());

  const s = await sayHello(t, `tcp://127.0.0.1:${gw.ports.tcp}`, { agent: 'pi-flood', token });
  t.equal(s.first?.t, FrameType.WELCOME, 'the agent has a session');
  const n = 500;
  s.tr.send({ t: FrameType.DATA, packets: Array.from({ length: n }, (_, i) => ({ seq: i + 1, target: `down/victim/${i}`, ts: Date.now(), data: i })) });
  const nacks = (): Frame[] => s.frames.filter((f) => f.t === FrameType.NACK);
  await pollUntil(() => nacks().length >= n, 10_000, `${n} NACKs`);
  t.ok(nacks().every((f) => f.t === FrameType.NACK && f.code === 'HANDLER_REJECTED'), 'every packet NACKed HANDLER_REJECTED');
  const rejectedLines = raw.filter((l) => l.includes('handler rejected the packet for good'));
  t.equal(rejectedLines.length, 1, `${n} rejected packets wrote ${rejectedLines.length} lines (the first whole; the rest counted for the summary)`);
  t.match(rejectedLines[0], /"cause":"cannot publish to \\"ferry\/down\/victim\/0\\"/, 'the first names its cause');
});

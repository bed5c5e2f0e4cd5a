/**
 * Issue 10, case 10: unauthenticated clients must not be able to flood the gateway's log. A real
 * gateway (gateway/main.ts in-process, default auth, 127.0.0.1) is hammered with bad HELLOs from
 * many connections; its log must grow with time (one summary line per interval per kind), not
 * with the attempts, and the summaries must add up to what the clients were told.
 */
import t from 'tap';
import { join } from 'node:path';
import { tcpDialer } from '../../agent/link/tcp.js';
import { createLog } from '../../common/log.js';
import { gatewayConfigSchema } from '../../gateway/config.js';
import { runGateway } from '../../gateway/main.js';
import { ErrorCode } from '../../protocol/errors.js';
import { FrameType, protocolVersion } from '../../protocol/frames.js';
import { pollUntil } from '../helpers/wait.js';

interface Line { msg: string; code?: string; count?: number; total?: number; summary?: boolean }

t.test('gateway log flood - 3,000 bad HELLOs cost log lines in proportion to time, and the summaries count them right', async (t) => {
  const dir = t.testdir();
  const raw: string[] = [];
  const intervalMs = 200;
  const gw = await runGateway(gatewayConfigSchema.parse({
    listen: { tcp: '127.0.0.1:0', admin: '127.0.0.1:0' }, dataDir: join(dir, 'gw'),
    routes: [{ match: '#', handler: 'file', path: join(dir, 'out.jsonl') }],
    log: { summaryIntervalMs: intervalMs },
  }), { log: createLog({ write: (l) => raw.push(l) }) });
  t.teardown(() => gw.stop());
  const startupLines = raw.length;
  const url = `tcp://127.0.0.1:${gw.ports.tcp}`;

  const attempts = 3000;
  const workers = 16;
  const told: Record<string, number> = {};
  let next = 0;
  const startedMs = Date.now();
  const worker = async (): Promise<void> => {
    while (next < attempts) {
      const i = next++;
      const tr = await tcpDialer(url, { connectTimeoutMs: 3000 })();
      const code = await new Promise<string>((resolve) => {
        tr.onFrame((f) => resolve(f.t === FrameType.BYE ? f.code : `frame ${f.t}`));
        void tr.closed.then(() => resolve('closed'));
        tr.send({ t: FrameType.HELLO, version: protocolVersion, agent: `intruder-${i % 50}`, ackedSeq: 0 });
      });
      told[code] = (told[code] ?? 0) + 1;
      tr.close();
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  const hammerMs = Date.now() - startedMs;
  t.comment(`${attempts} attempts in ${hammerMs} ms; the clients were told ${JSON.stringify(told)}`);
  t.equal(Object.keys(told).filter((c) => c !== ErrorCode.AUTH_FAILED && c !== ErrorCode.GATEWAY_BUSY).length, 0, 'every attempt refused with AUTH_FAILED or GATEWAY_BUSY');
  t.ok((told[ErrorCode.AUTH_FAILED] ?? 0) > 0, 'some reached HELLO');

  // The bound, per kind: a summary per interval, and for a kind that stops and starts again a whole
  // line and a stop line per two intervals at worst: two lines per interval, plus slack for timer drift.
  const lines = (): Line[] => raw.map((l) => JSON.parse(l) as Line);
  const kindsOf = (ls: Line[]): Set<string> => new Set(ls.map((l) => `${l.msg.replace(/ \((summary|stopped)\)$/, '')}|${l.code}`));
  const checkBound = (when: string, elapsedMs: number): void => {
    const ls = lines().slice(startupLines);
    const kinds = kindsOf(ls);
    const linesMax = kinds.size * (2 * Math.ceil(elapsedMs / intervalMs) + 3);
    const bytes = raw.slice(startupLines).reduce((n, l) => n + Buffer.byteLength(l), 0);
    t.comment(`${when}: ${ls.length} log lines, ${bytes} bytes, over ${elapsedMs} ms, kinds: ${[...kinds].join(', ')}`);
    t.ok(ls.length <= linesMax, `${when}: ${ls.length} lines <= ${linesMax} (kinds x intervals), for ${attempts} attempts`);
    t.ok(bytes <= linesMax * 1024, `${when}: ${bytes} bytes <= ${linesMax * 1024}`);
    t.ok(ls.length * 5 < attempts, `${when}: far fewer lines than attempts`);
  };
  checkBound('right after the hammering', hammerMs);

  // Each kind ends its storm with a "(stopped)" line within two intervals.
  const stopped = (msg: string): Line | undefined => lines().find((l) => l.msg === `${msg} (stopped)`);
  await pollUntil(() => stopped('session: authentication failed') !== undefined, 10_000, 'the storm of failed HELLOs to be declared stopped');
  checkBound('once stopped', Date.now() - startedMs);
  const all = lines().slice(startupLines);

  // What the summaries say adds up to what the clients were told.
  const counted = (msg: string, code: string): number => {
    const mine = all.filter((l) => l.code === code && l.msg.startsWith(msg));
    return mine.filter((l) => l.msg === msg).length + mine.filter((l) => l.msg === `${msg} (summary)`).reduce((n, l) => n + (l.count ?? 0), 0);
  };
  t.equal(counted('session: authentication failed', ErrorCode.AUTH_FAILED), told[ErrorCode.AUTH_FAILED], 'failed HELLOs: first line + summary counts = AUTH_FAILED BYEs sent');
  t.equal(stopped('session: authentication failed')?.total, told[ErrorCode.AUTH_FAILED], 'the stop line carries the total');
  const busy = told[ErrorCode.GATEWAY_BUSY] ?? 0;
  t.equal(counted('listener: connection refused', ErrorCode.GATEWAY_BUSY), busy, 'refused connections: first line + summary counts = GATEWAY_BUSY BYEs sent');
  t.equal(gw.stats().refused[ErrorCode.GATEWAY_BUSY] ?? 0, busy, 'and the stats count every one');
});

/**
 * common/stuck-log.ts (issue 13, logs): a stuck cause is logged once when it starts, summarised at
 * most once per interval with its counts, and once when it clears; the next one starts afresh.
 * Time is a FakeClock; the log writes into an array (through pino, as in production).
 */
import t from 'tap';
import { createLog } from '../../common/log.js';
import { StuckLog } from '../../common/stuck-log.js';
import { FakeClock } from '../agent/fixtures/fake-clock.js';

interface Line { level: string; msg: string; code?: string; count?: number; total?: number; packets?: number; packetsTotal?: number; forMs?: number; error?: string; route?: number }

function rig(intervalMs = 30_000) {
  const clock = new FakeClock();
  const raw: string[] = [];
  const stuck = new StuckLog({ log: createLog({ write: (l) => raw.push(l), now: () => clock.now(), format: 'json' }), clock, summaryIntervalMs: intervalMs });
  return { clock, stuck, lines: (): Line[] => raw.map((l) => JSON.parse(l) as Line) };
}

const refused = (r: ReturnType<typeof rig>, packet: string): void =>
  r.stuck.fail('routes[0]', 'ECONNREFUSED', { msg: 'route: cannot connect', fields: { route: 0, error: 'connect ECONNREFUSED 127.0.0.1:1883' }, packet });

t.test('stuck log - start once with the reason, summaries bounded by the interval with counts, clear with totals', async (t) => {
  const r = rig(30_000);
  // 12 packets, each retried every second for 100 s: 1,200 attempts.
  for (let s = 0; s < 100; s++) {
    for (let p = 0; p < 12; p++) refused(r, `a/${p}`);
    r.clock.advance(1000);
  }
  const lines = r.lines();
  t.same(lines[0], { level: 'warn', time: lines[0] && (lines[0] as { time?: string }).time, code: 'ECONNREFUSED', route: 0, error: 'connect ECONNREFUSED 127.0.0.1:1883', msg: 'route: cannot connect' }, 'the first line is whole, at warn, with the code and the reason');
  const summaries = lines.filter((l) => l.msg === 'route: cannot connect (summary)');
  t.equal(summaries.length, 3, 'one summary per 30 s in 100 s');
  t.equal(lines.length, 4, 'nothing else was logged');
  t.same(summaries.map((l) => l.count), [12 * 30 - 1, 12 * 30, 12 * 30], 'attempts since the last line');
  t.same(summaries.map((l) => l.total), [360, 720, 1080], 'attempts since the start');
  t.same(summaries.map((l) => [l.packets, l.packetsTotal]), [[12, 12], [12, 12], [12, 12]], 'distinct packets affected');
  t.same(summaries.map((l) => l.forMs), [30_000, 60_000, 90_000]);
  t.ok(summaries.every((l) => l.level === 'warn' && l.code === 'ECONNREFUSED'));

  r.stuck.clear('routes[0]');
  const cleared = r.lines().at(-1)!;
  t.same([cleared.level, cleared.msg, cleared.code, cleared.total, cleared.packetsTotal, cleared.forMs], ['info', 'route: cannot connect (cleared)', 'ECONNREFUSED', 1200, 12, 100_000], 'cleared once at info, with the totals and the duration');
  t.equal(r.clock.pendingTimers, 0, 'no timer left after the clear');
  r.clock.advance(120_000);
  t.equal(r.lines().length, 5, 'nothing after the clear');
});

t.test('stuck log - after a clear the cause starts afresh; a clear of nothing logs nothing', async (t) => {
  const r = rig(30_000);
  r.stuck.clear('routes[0]');
  t.equal(r.lines().length, 0);
  refused(r, 'a/1');
  r.stuck.clear('routes[0]');
  refused(r, 'a/2');
  refused(r, 'a/2');
  r.clock.advance(30_000);
  t.same(r.lines().map((l) => [l.msg, l.total ?? null]), [
    ['route: cannot connect', null],
    ['route: cannot connect (cleared)', 1],
    ['route: cannot connect', null],
    ['route: cannot connect (summary)', 2],
  ]);
  t.same([r.lines()[3]?.packets, r.lines()[3]?.packetsTotal], [1, 1], 'one packet tried again since the start line, one in all');
});

t.test('stuck log - a cause with a lone attempt is not summarised, and a quiet one keeps no timer', async (t) => {
  const r = rig(30_000);
  refused(r, 'a/1');
  t.equal(r.clock.pendingTimers, 0, 'a first attempt arms nothing');
  r.clock.advance(90_000);
  t.equal(r.lines().length, 1);
  // A later attempt is summarised at once: the last line is older than the interval.
  refused(r, 'a/1');
  r.clock.advance(0);
  t.same(r.lines().map((l) => l.msg), ['route: cannot connect', 'route: cannot connect (summary)']);
});

t.test('stuck log - causes are keyed by scope and code; clear(scope) ends every code of the scope', async (t) => {
  const r = rig(10_000);
  for (let i = 0; i < 5; i++) {
    refused(r, `a/${i}`);
    r.stuck.fail('routes[0]', 'HANDLER_FAILED', { msg: 'session: handler failed', packet: `a/${i}` });
    r.stuck.fail('routes[1]', 'HANDLER_FAILED', { msg: 'session: handler failed', packet: `b/${i}` });
  }
  t.equal(r.lines().length, 3, 'one start line per cause');
  t.ok(r.stuck.isStuck('routes[0]') && r.stuck.isStuck('routes[1]'));
  r.stuck.clear('routes[0]');
  t.same(r.lines().slice(3).map((l) => `${l.msg} ${l.code}`).sort(), ['route: cannot connect (cleared) ECONNREFUSED', 'session: handler failed (cleared) HANDLER_FAILED']);
  t.notOk(r.stuck.isStuck('routes[0]'));
  r.clock.advance(10_000);
  t.same(r.lines().at(-1)?.msg, 'session: handler failed (summary)', 'the other route is still summarised');
  r.stuck.close();
  t.equal(r.clock.pendingTimers, 0, 'close stops the timers');
});

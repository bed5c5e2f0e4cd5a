/**
 * One writer per file. Two FileHandlers appending to one path would each cut the file back to
 * their own idea of its length after a failed write, cutting lines the other wrote and
 * acknowledged (shown in the review by a replaced handler's failed write on a full SimDisk). So:
 * a reload keeps the running handler of a route whose settings did not change, refuses a new
 * file handler on a path a running route writes, and one configuration never names a file twice.
 */
import t from 'tap';
import { gatewayConfigSchema, type RouteConfig } from '../../gateway/config.js';
import type { Handler } from '../../gateway/handlers/handler.js';
import { CountedHandler, RouteTable } from '../../gateway/route-table.js';
import { reusePlan, type LiveRoute } from '../../gateway/route-reuse.js';
import { FakeClock } from '../agent/fixtures/fake-clock.js';
import { silentLog } from '../../common/log.js';

const fakeHandler = (name: string): Handler => ({ kind: name, handle: async () => ({ ok: true }), close: async () => undefined });
const route = (match: string, path: string, extra: Partial<RouteConfig> = {}): RouteConfig =>
  gatewayConfigSchema.parse({ listen: { tcp: '127.0.0.1:0', admin: false }, dataDir: '/gw', routes: [{ match, handler: 'file', path, ...extra }] }).routes[0]!;

t.test('reload - an unchanged route keeps its handler; a changed one gets a new one', async (t) => {
  const a = route('a/#', '/out/a.jsonl');
  const b = route('b/#', '/out/b.jsonl');
  const running: LiveRoute[] = [{ config: a, creds: undefined, handler: fakeHandler('a') }, { config: b, creds: undefined, handler: fakeHandler('b') }];
  const plan = reusePlan(running, [route('c/#', '/out/c.jsonl'), a], [undefined, undefined]);
  t.same(plan.fresh, [0], 'only the new route needs a handler');
  t.equal(plan.reused[1]?.handler, running[0]!.handler, 'a/# keeps the very handler that writes /out/a.jsonl');
});

t.test('reload - a new file handler on a path a running route writes is refused', async (t) => {
  const a = route('a/#', '/out/a.jsonl');
  const running: LiveRoute[] = [{ config: a, creds: undefined, handler: fakeHandler('a') }];
  t.throws(() => reusePlan(running, [route('a/#', '/out/a.jsonl', { sync: 'none' })], [undefined]), { code: 'CONFIG_INVALID', message: /one writer per file/ }, 'other settings, same file');
  t.throws(() => reusePlan(running, [route('x/#', '/out/../out/a.jsonl')], [undefined]), { code: 'CONFIG_INVALID' }, 'another route, the same file by another spelling');
  t.same(reusePlan(running, [route('a/#', '/out/a2.jsonl', { sync: 'none' })], [undefined]).fresh, [0], 'other settings on another file are fine');
});

t.test('config - two file routes on one path are refused', async (t) => {
  const parse = (): unknown => gatewayConfigSchema.parse({ listen: { tcp: '127.0.0.1:0' }, dataDir: '/gw', routes: [{ match: 'a/#', handler: 'file', path: '/out/x.jsonl' }, { match: 'b/#', handler: 'file', path: '/out/./x.jsonl' }] });
  t.throws(parse, /routes\[0\] writes \/out\/\.\/x\.jsonl already/);
});

t.test('route table - a kept handler is not retired, closed or counted twice', async (t) => {
  const clock = new FakeClock();
  let closed = 0;
  const kept: Handler = { kind: 'file', handle: async () => ({ ok: true }), close: async () => void closed++ };
  const dropped: Handler = { kind: 'file', handle: async () => ({ ok: true }), close: async () => void closed++ };
  const table = new RouteTable([{ match: 'a/#', handler: kept }, { match: 'b/#', handler: dropped }], { clock, log: silentLog, inUse: () => false, retirePollMs: 1 });
  const before = table.router.route('a/x');
  table.replace([{ match: 'c/#', handler: fakeHandler('c') }, { match: 'a/#', handler: kept }]);
  const after = table.router.route('a/x');
  t.equal(after, before, 'a/x goes to the same counted handler as before the reload');
  t.ok(after instanceof CountedHandler && after.inner === kept);
  for (let i = 0; i < 5; i++) {
    clock.advance(5);
    await new Promise((r) => setImmediate(r));
  }
  await table.close();
  t.equal(closed, 2, 'each handler closed exactly once (the dropped one on retirement, the kept one at close)');
});

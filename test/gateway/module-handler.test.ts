import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLog } from '../../common/log.js';
import { gatewayConfigSchema } from '../../gateway/config.js';
import type { DispatchPacket, Handler, HandlerResult } from '../../gateway/handlers/handler.js';
import { loadModuleHandler } from '../../gateway/handlers/module.js';
import { ErrorCode } from '../../protocol/errors.js';
import type { PacketData } from '../../protocol/packet.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const example = fileURLToPath(new URL('../../examples/handlers/stdout-handler.js', import.meta.url));

function pkt(seq: number, data: PacketData = { seq }): DispatchPacket {
  return { agent: 'pi-1', seq, target: 'debug/x', ts: 1_700_000_000_000 + seq, data };
}

function logInto(lines: string[]): ReturnType<typeof createLog> {
  return createLog({ level: 'debug', write: (l) => lines.push(l) });
}

async function load(t: Test, module: string, options: Record<string, unknown> = {}, log = logInto([])): Promise<Handler> {
  const h = await loadModuleHandler({ module, options }, log);
  t.teardown(() => h.close());
  return h;
}

/** What `fn` writes to process.stdout, and no more (tap reads this process's stdout as TAP). */
async function stdoutOf(fn: () => Promise<unknown>): Promise<string> {
  let text = '';
  const original = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array, enc?: unknown, cb?: unknown): boolean => {
    text += String(chunk);
    const done = typeof enc === 'function' ? enc : cb;
    if (typeof done === 'function') queueMicrotask(() => (done as () => void)());
    return true;
  }) as typeof process.stdout.write;
  try {
    await fn();
  } finally {
    process.stdout.write = original;
  }
  return text;
}

/** Writes a module file into the test's directory; returns its path. */
async function moduleFile(t: Test, name: string, source: string): Promise<string> {
  const path = join(t.testdir(), name);
  await writeFile(path, source);
  return path;
}

t.test('module handler - the example stdout handler, loaded through a module route, prints each packet once', async (t) => {
  // The route as the config file gives it, with the path relative to the working directory.
  const config = gatewayConfigSchema.parse({
    listen: { tcp: '127.0.0.1:0', admin: '127.0.0.1:0' },
    dataDir: t.testdir(),
    routes: [{ match: 'debug/#', handler: 'module', module: relative(process.cwd(), example) }],
  });
  const route = config.routes[0]!;
  if (route.handler !== 'module') throw new Error('not a module route');
  t.same(route.options, {}, 'options default to an empty map');
  const logged: string[] = [];
  const h = await load(t, route.module, route.options, logInto(logged));
  t.equal(h.kind, 'stdout');
  t.equal(h.inflightMax, 64);
  t.match(logged.join(''), /stdout handler: ready/, 'the module got the gateway log');

  const results: HandlerResult[] = [];
  const out = await stdoutOf(async () => {
    results.push(await h.handle(pkt(1, { t: 21.5 })));
    results.push(await h.handle(pkt(2, new Uint8Array([1, 2, 3]))));
    results.push(await h.handle(pkt(2, new Uint8Array([1, 2, 3])))); // handed over again
  });
  t.same(results, [{ ok: true }, { ok: true }, { ok: true }]);
  t.same(out.trimEnd().split('\n').map((l) => JSON.parse(l) as unknown), [
    { agent: 'pi-1', seq: 1, target: 'debug/x', ts: 1_700_000_000_001, data: { t: 21.5 } },
    { agent: 'pi-1', seq: 2, target: 'debug/x', ts: 1_700_000_000_002, data: { base64: 'AQID' } },
  ], 'one JSON line per packet, the repeat not printed again');
});

t.test('module handler - options reach createHandler (as a copy) and an async createHandler is awaited', async (t) => {
  const path = await moduleFile(t, 'echo.mjs', `
    export default async function createHandler(options, { log }) {
      await new Promise((r) => setTimeout(r, 10));
      options.changed = true;
      globalThis.__ferrySeen = [];
      return { kind: 'echo', handle: async (p) => { globalThis.__ferrySeen.push([options.tag, p.seq]); return { ok: true }; } };
    }`);
  const options = { tag: 'T', nested: { a: 1 } };
  const h = await load(t, path, options);
  t.same(await h.handle(pkt(5)), { ok: true });
  t.same((globalThis as { __ferrySeen?: unknown }).__ferrySeen, [['T', 5]]);
  t.same(options, { tag: 'T', nested: { a: 1 } }, "the route's options are not changed by the module");
  t.equal(h.inflightMax, 1, 'inflightMax defaults to 1');
  await h.close(); // no close of its own: nothing to do, no error
});

t.test('module handler - a module that cannot give a handler stops the start with CONFIG_INVALID naming it', async (t) => {
  const dir = t.testdir();
  const cases: [string, string][] = [
    ['no default export', 'export const x = 1;'],
    ['createHandler throws', 'export default () => { throw new Error("backend URL missing"); };'],
    ['no handle method', 'export default () => ({ kind: "x" });'],
    ['inflightMax 0', 'export default () => ({ handle: async () => ({ ok: true }), inflightMax: 0 });'],
    ['syntax error', 'export default () => {'],
  ];
  for (const [what, source] of cases) {
    const path = join(dir, `${what.replaceAll(' ', '-')}.mjs`);
    await writeFile(path, source);
    await t.rejects(loadModuleHandler({ module: path, options: {} }, logInto([])), { code: ErrorCode.CONFIG_INVALID, message: new RegExp(path.replaceAll('.', '\\.')) }, what);
  }
  await t.rejects(loadModuleHandler({ module: join(dir, 'missing.mjs'), options: {} }, logInto([])), { code: ErrorCode.CONFIG_INVALID, message: /missing\.mjs: cannot load/ }, 'a missing file');
  await t.rejects(loadModuleHandler({ module: 'missing.mjs', options: {} }, logInto([]), dir), { message: new RegExp(join(dir, 'missing.mjs').replaceAll('.', '\\.')) }, 'a relative path starts at the given directory');
});

t.test('module handler - what a module handler gets wrong becomes a retryable failure, never a throw', async (t) => {
  const path = await moduleFile(t, 'bad.mjs', `
    export default () => ({
      kind: 'bad',
      handle(p) {
        switch (p.seq) {
          case 1: throw new Error('sync boom');
          case 2: return Promise.reject(new Error('async boom'));
          case 3: return Promise.resolve(undefined);
          case 4: return { ok: false, retryable: false, code: 'MY_OWN_CODE', message: 'nope' };
          case 5: return { ok: false, retryable: true, code: 'HANDLER_TIMEOUT', message: 'slow', retryAfterMs: -5 };
          case 6: return { ok: false, retryable: true, code: 'HANDLER_FAILED', message: 'x'.repeat(5000), retryAfterMs: 2500 };
          default: return { ok: true, extra: 'ignored' };
        }
      },
      close() { throw new Error('close boom'); },
    });`);
  const logged: string[] = [];
  const h = await load(t, path, {}, logInto(logged));
  const r = await Promise.all([1, 2, 3, 4, 5, 6, 7].map((seq) => h.handle(pkt(seq))));
  const brief = r.map((x) => (x.ok ? 'ok' : `${x.retryable ? 'retry' : 'perm'} ${x.code}${x.retryable ? ` ${x.retryAfterMs}` : ''}`));
  t.same(brief, [
    'retry HANDLER_FAILED 1000',
    'retry HANDLER_FAILED 1000',
    'retry HANDLER_FAILED 1000',
    'perm HANDLER_REJECTED',
    'retry HANDLER_TIMEOUT 1000',
    'retry HANDLER_FAILED 2500',
    'ok',
  ]);
  t.match(r[0], { message: /threw: sync boom/ });
  t.match(r[3], { message: 'MY_OWN_CODE: nope' }, 'a code outside the catalogue is kept in the message');
  t.equal(r[5]!.ok ? 0 : r[5]!.message.length, 1000, 'a long message is cut');
  t.same(r[6], { ok: true });
  await h.close();
  t.match(logged.join(''), /close failed/, 'a failing close is logged, not thrown');
});

import t from 'tap';
import { compilePattern, Router } from '../../gateway/routes.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

/** Asserts that the pattern matches every target in `yes` and none in `no`. */
function check(t: Test, pattern: string, yes: string[], no: string[]): void {
  const m = compilePattern(pattern);
  for (const target of yes) t.equal(m(target), true, `'${pattern}' matches '${target}'`);
  for (const target of no) t.equal(m(target), false, `'${pattern}' does not match '${target}'`);
}

t.test('routes - an exact pattern matches only the identical target', async (t) => {
  check(t, 'telemetry/temp', ['telemetry/temp'], ['telemetry/temp/x', 'telemetry', 'telemetry/tem', 'Telemetry/temp', 'telemetry/temp ', '']);
});

t.test("routes - a trailing '*' matches every target with that prefix", async (t) => {
  check(t, 'telemetry/*', ['telemetry/', 'telemetry/temp', 'telemetry/a/b/c'], ['telemetry', 'telemetr', 'x/telemetry/temp', 'telemetryX']);
  check(t, 'tele*', ['tele', 'telemetry', 'tele/x'], ['tel', 'xtele']);
  check(t, '*', ['', 'a', 'a/b/c'], []);
});

t.test("routes - '+' matches exactly one level", async (t) => {
  check(t, 'a/+', ['a/b', 'a/temp'], ['a', 'a/b/c', 'b/c', 'ab']);
  check(t, '+/temp', ['x/temp', 'y/temp'], ['temp', 'x/y/temp', 'x/hum']);
  check(t, 'a/+/c', ['a/b/c', 'a/zz/c'], ['a/c', 'a/b/b/c', 'a/b/d', 'a/b/c/d']);
  check(t, '+/+', ['a/b'], ['a', 'a/b/c']);
});

t.test("routes - '#' matches the rest, including nothing ('a/#' matches 'a')", async (t) => {
  check(t, 'a/#', ['a', 'a/b', 'a/b/c', 'a/b/c/d'], ['ab', 'b', 'b/a', 'x/a/b']);
  check(t, '#', ['', 'a', 'a/b/c'], []);
  check(t, '+/#', ['a', 'a/b', 'a/b/c'], []);
  check(t, 'a/+/#', ['a/b', 'a/b/c', 'a/b/c/d'], ['a', 'b/c']);
});

t.test('routes - invalid patterns throw when compiled', async (t) => {
  for (const pattern of ['', 'a*b', '*a*', 'a/**', 'a/#/b', '#/a', 'a#', 'a/b#', 'a/#x', 'a+', 'a/+b', '+a/b', 'a/b+/c']) {
    t.throws(() => compilePattern(pattern), `'${pattern}' is rejected`);
  }
});

t.test('routes - invalid patterns make the Router constructor throw', async (t) => {
  t.throws(() => new Router([{ match: 'ok/#', handler: 1 }, { match: 'a/#/b', handler: 2 }]), /'#' must be a whole last level/);
});

t.test('routes - Router returns the handler of the first matching route in configuration order', async (t) => {
  const router = new Router([
    { match: 'alarm/fire', handler: 'fire' },
    { match: 'alarm/#', handler: 'alarms' },
    { match: 'alarm/smoke', handler: 'never' },
    { match: 'telemetry/+', handler: 'telemetry' },
    { match: '*', handler: 'fallback' },
  ]);
  t.equal(router.route('alarm/fire'), 'fire', 'the exact route listed first wins over the wildcard');
  t.equal(router.route('alarm/smoke'), 'alarms', 'a later exact route loses to an earlier wildcard');
  t.equal(router.route('alarm'), 'alarms');
  t.equal(router.route('telemetry/temp'), 'telemetry');
  t.equal(router.route('telemetry/temp/raw'), 'fallback');
  t.equal(router.route('other'), 'fallback');
});

t.test('routes - Router returns undefined when no route matches', async (t) => {
  const router = new Router([{ match: 'a/+', handler: 'a' }, { match: 'b', handler: 'b' }]);
  t.equal(router.route('c'), undefined);
  t.equal(router.route('a'), undefined);
  t.equal(router.route('b/x'), undefined);
  t.equal(router.route('a/x'), 'a');
  t.equal(new Router<string>([]).route('a'), undefined, 'an empty router matches nothing');
});

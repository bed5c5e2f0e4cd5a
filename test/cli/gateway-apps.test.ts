/**
 * `ferry gateway add-app | revoke-app | apps` through the real CLI process (dist/cli/ferry.js:
 * run `npx tsc -p .` first). That a running gateway honours the tokens without a restart is in
 * test/gateway/downlink-api.test.ts.
 */
import t from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppRegistry, appsFileName, parseApps } from '../../gateway/apps.js';
import { runFerry } from '../helpers/cli-run.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

async function setup(t: Test): Promise<{ config: string; dataDir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-apps-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'gw');
  const config = join(dir, 'gateway.yaml');
  await writeFile(config, ['listen:', '  tcp: 127.0.0.1:0', '  admin: 127.0.0.1:0', `dataDir: ${dataDir}`, 'routes:', '  - match: "#"', '    handler: file', `    path: ${join(dir, 'out.jsonl')}`, ''].join('\n'));
  return { config, dataDir };
}

t.test('gateway apps CLI - add-app prints the token once, stores its hash, --agents limits it; apps lists; revoke-app', async (t) => {
  const { config, dataDir } = await setup(t);
  const all = await runFerry(['gateway', 'add-app', 'dashboard', '--config', config]);
  t.equal(all.code, 0, all.stderr);
  const token = all.stdout.trim();
  t.match(token, /^[A-Za-z0-9_-]{43}$/, 'stdout is the token alone');
  t.match(all.stderr, /application dashboard added .*every agent.*shown this once/);
  const limited = await runFerry(['gateway', 'add-app', 'ops', '--agents', 'pi-2,pi-1', '--config', config]);
  t.equal(limited.code, 0, limited.stderr);
  t.match(limited.stderr, /agents pi-1, pi-2/);
  const onDisk = await readFile(join(dataDir, appsFileName), 'utf8');
  t.notOk(onDisk.includes(token) || onDisk.includes(limited.stdout.trim()), 'no token in apps.json');
  const registry = await AppRegistry.open(dataDir, { watchIntervalMs: 0 });
  t.teardown(() => registry.close());
  t.equal(registry.byToken(token)?.name, 'dashboard');
  t.same(registry.byToken(limited.stdout.trim())?.agents, ['pi-1', 'pi-2']);

  const list = await runFerry(['gateway', 'apps', '--config', config]);
  t.equal(list.code, 0);
  t.match(list.stdout, /^dashboard  active  agents \*  added \d{4}-\S+Z\nops  active  agents pi-1,pi-2  added \S+\n$/);
  t.notMatch(list.stdout, /sha256|[0-9a-f]{64}/, 'no hashes listed');

  const revoked = await runFerry(['gateway', 'revoke-app', 'dashboard', '--config', config]);
  t.equal(revoked.code, 0, revoked.stderr);
  t.equal(revoked.stdout, 'application dashboard revoked\n');
  await registry.reload();
  t.equal(registry.byToken(token), undefined, 'the revoked token no longer finds an app');
  t.match((await runFerry(['gateway', 'apps', '--config', config])).stdout, /^dashboard  revoked  agents \*  added \S+  revoked \S+\n/);
  t.equal((await runFerry(['gateway', 'revoke-app', 'dashboard', '--config', config])).stdout, 'application dashboard was already revoked\n');
});

t.test('gateway apps CLI - mistakes get a clear message and CONFIG_INVALID, and print no token', async (t) => {
  const { config } = await setup(t);
  const cases: [string[], RegExp][] = [
    [['gateway', 'add-app', '--config', config], /give the application's NAME/],
    [['gateway', 'add-app', 'a', 'b', '--config', config], /give the application's NAME \(one\)/],
    [['gateway', 'add-app', 'bad name', '--config', config], /'bad name' is not an application name/],
    [['gateway', 'add-app', 'x', '--agents', 'pi-1,no/slash', '--config', config], /'no\/slash' is not an agent ID/],
    [['gateway', 'add-app', 'x', '--agents', ',', '--config', config], /at least one agent/],
    [['gateway', 'add-app', 'x'], /--config FILE is required/],
    [['gateway', 'revoke-app', 'x', '--agents', 'a', '--config', config], /takes no --agents/],
    [['gateway', 'apps', 'x', '--config', config], /takes no NAME/],
    [['gateway', 'add-app', 'x', '--token', 'y', '--config', config], /Unknown option '--token'/],
  ];
  for (const [args, message] of cases) {
    const r = await runFerry(args);
    t.equal(r.code, 1, `${args.slice(1).join(' ')}: exits 1`);
    t.match(r.stderr, message, `${args[1]}: ${r.stderr.trim()}`);
    t.match(r.stderr, /\[CONFIG_INVALID\]/);
    t.equal(r.stdout, '', 'nothing on stdout');
  }
  const again = await runFerry(['gateway', 'add-app', 'dup', '--config', config]);
  t.equal(again.code, 0);
  const twice = await runFerry(['gateway', 'add-app', 'dup', '--config', config]);
  t.equal(twice.code, 1);
  t.match(twice.stderr, /already added/);
});

t.test('gateway apps CLI - add-app commands run at once all land, the file stays whole', async (t) => {
  const { dataDir } = await setup(t);
  const names = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6'];
  const runs = await Promise.all(names.map((n) => runFerry(['gateway', 'add-app', n, '--data-dir', dataDir], 60_000)));
  runs.forEach((r, i) => t.equal(r.code, 0, `${names[i]}: ${r.stderr}`));
  const path = join(dataDir, appsFileName);
  const apps = parseApps(await readFile(path, 'utf8'), path);
  t.same([...apps.keys()].sort(), names, 'every add is in the file');
  const registry = await AppRegistry.open(dataDir, { watchIntervalMs: 0 });
  t.teardown(() => registry.close());
  runs.forEach((r, i) => t.equal(registry.byToken(r.stdout.trim())?.name, names[i], `${names[i]}'s printed token works`));
});

/** The built CLI: --version, help, and what `ferry send` loads. */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ferryBin } from '../../cli/proc.js';
import { commands } from '../../cli/commands.js';
import { runFerry } from '../helpers/cli-run.js';

const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

t.test('cli - --version, -V and version print the package version', async (t) => {
  for (const arg of ['--version', '-V', 'version']) {
    const r = await runFerry([arg]);
    t.equal(r.code, 0, `${arg} exits 0`);
    t.equal(r.stdout, `ferry ${version}\n`, `${arg} prints ferry ${version}`);
  }
});

t.test('cli - help lists every command; help COMMAND prints its options; an unknown one exits 2', async (t) => {
  const list = await runFerry(['help']);
  t.equal(list.code, 0);
  for (const name of Object.keys(commands)) t.match(list.stdout, new RegExp(`^  ${name} `, 'm'), `lists ${name}`);
  const send = await runFerry(['help', 'send']);
  t.equal(send.code, 0);
  t.match(send.stdout, /^usage: ferry send .*--wait-timeout-ms MS/s, 'help send prints send\'s options');
  t.equal((await runFerry(['send', '--help'])).stdout, send.stdout, 'the same as send --help');
  const nope = await runFerry(['help', 'nope']);
  t.equal(nope.code, 2, 'unknown command exits 2');
  t.match(nope.stderr, /unknown command 'nope'/);
  t.equal((await runFerry([])).code, 2, 'no command exits 2');
});

t.test('cli - ferry send --socket loads neither the agent, the gateway, zod nor yaml', async (t) => {
  // A module hook that prints every module loaded; the send fails (no agent), which is fine here.
  const hook = `data:text/javascript,${encodeURIComponent("import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent('export async function load(u, c, n) { process.stderr.write(\"LOADED \" + u + \"\\\\n\"); return n(u, c); }'));")}`;
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const r = spawnSync(process.execPath, ['--import', hook, ferryBin, 'send', '--socket', '/nonexistent/agent.sock', '--target', 'a/b', '--data', '1'], { env, encoding: 'utf8' });
  const loaded = r.stderr.split('\n').filter((l) => l.startsWith('LOADED file:')).map((l) => l.slice('LOADED '.length));
  t.ok(loaded.some((u) => u.endsWith('/cli/cmd-send.js')), `the hook saw the modules (${loaded.length})`);
  t.match(r.stderr, /AGENT_UNREACHABLE/, 'send ran to its end');
  const heavy = loaded.filter((u) => /\/node_modules\/|\/gateway\/|\/agent\/main\.js|\/agent\/store\/|\/agent\/config\.js/.test(u));
  t.same(heavy, [], 'nothing heavy was loaded');
  t.ok(loaded.length <= 12, `at most 12 modules: ${loaded.length}`);
});

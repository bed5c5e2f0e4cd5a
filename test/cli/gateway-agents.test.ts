/**
 * `ferry gateway add-agent | issue-token | revoke-agent | list-agents` through the real CLI
 * process (dist/cli/ferry.js: run `npx tsc -p .` first), and a running `ferry gateway` noticing
 * what they change.
 */
import t from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerry, stopProcess } from '../../cli/proc.js';
import { runFerry } from '../helpers/cli-run.js';
import { sayHello } from '../helpers/hello.js';
import { ErrorCode } from '../../protocol/errors.js';
import { FrameType } from '../../protocol/frames.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];



async function setup(t: Test, auth = 'auth: { required: true }'): Promise<{ dir: string; config: string; dataDir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-agents-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'gw');
  const config = join(dir, 'gateway.yaml');
  await writeFile(config, ['listen:', '  tcp: 127.0.0.1:0', '  admin: 127.0.0.1:0', auth, `dataDir: ${dataDir}`, 'routes:', '  - match: "#"', '    handler: file', `    path: ${join(dir, 'out.jsonl')}`, ''].join('\n'));
  return { dir, config, dataDir };
}

t.test('gateway agents CLI - add, list, issue-token, revoke; only hashes on disk', async (t) => {
  const { config, dataDir } = await setup(t);
  const added = await runFerry(['gateway', 'add-agent', '--config', config, '--agent', 'pi-1']);
  t.equal(added.code, 0, added.stderr);
  const token = added.stdout.trim();
  t.match(token, /^[A-Za-z0-9_-]{43}$/, 'stdout is the token alone');
  t.match(added.stderr, /pi-1 registered .*shown this once/);
  const onDisk = await readFile(join(dataDir, 'agents.json'), 'utf8');
  t.notOk(onDisk.includes(token), 'the token is not in agents.json');
  t.match(onDisk, /"tokenHash": "sha256:[0-9a-f]{64}"/);

  const again = await runFerry(['gateway', 'add-agent', '--config', config, '--agent', 'pi-1']);
  t.equal(again.code, 1);
  t.match(again.stderr, /agent pi-1 is already registered.*\[CONFIG_INVALID\]/);
  t.equal(again.stdout, '', 'no token printed');

  const issued = await runFerry(['gateway', 'issue-token', '--config', config, '--agent', 'pi-1']);
  t.equal(issued.code, 0, issued.stderr);
  t.not(issued.stdout.trim(), token, 'a new token');
  t.match(issued.stderr, /old token no longer works/);

  await runFerry(['gateway', 'add-agent', '--config', config, '--agent', 'pi-2']);
  const list = await runFerry(['gateway', 'list-agents', '--config', config]);
  t.equal(list.code, 0);
  t.match(list.stdout, /^pi-1  active  added \d{4}-\d\d-\d\dT[\d:.]+Z\npi-2  active  added /);
  t.notMatch(list.stdout, /sha256|[0-9a-f]{64}/, 'no hashes listed');

  const revoked = await runFerry(['gateway', 'revoke-agent', '--config', config, '--agent', 'pi-1']);
  t.equal(revoked.code, 0);
  t.equal(revoked.stdout, 'agent pi-1 revoked\n');
  t.match((await runFerry(['gateway', 'list-agents', '--config', config])).stdout, /^pi-1  revoked  added \S+  revoked \S+\n/);
  t.equal((await runFerry(['gateway', 'revoke-agent', '--config', config, '--agent', 'pi-1'])).stdout, 'agent pi-1 was already revoked\n');
});

t.test('gateway agents CLI - mistakes get a clear message and CONFIG_INVALID', async (t) => {
  const { config } = await setup(t);
  const cases: [string[], RegExp][] = [
    [['gateway', 'add-agent', '--config', config], /--agent ID is required/],
    [['gateway', 'add-agent', '--config', config, '--agent', 'a b'], /'a b' is not an agent ID/],
    [['gateway', 'add-agent', '--agent', 'pi-1'], /--config FILE is required/],
    [['gateway', 'list-agents', '--config', config, '--agent', 'x'], /takes no --agent/],
    [['gateway', 'add-agent', '--config', config, '--agent', 'x', '--token', 'y'], /Unknown option '--token'/],
    [['gateway', 'remove-agent', '--config', config], /unknown subcommand 'remove-agent'/],
  ];
  for (const [args, message] of cases) {
    const r = await runFerry(args);
    t.equal(r.code, 1, `${args.slice(1).join(' ')}: exits 1`);
    t.match(r.stderr, message, `${args[1]}: ${r.stderr.trim()}`);
    t.match(r.stderr, /\[CONFIG_INVALID\]/);
  }
});

t.test('gateway agents CLI - --help lists the subcommands', async (t) => {
  const r = await runFerry(['gateway', '--help']);
  t.equal(r.code, 0);
  for (const sub of ['add-agent', 'issue-token', 'revoke-agent', 'list-agents', '--listen-tls']) t.match(r.stdout, sub);
});

t.test('gateway agents CLI - a running ferry gateway takes the token and ends the session on revoke-agent', async (t) => {
  const { dir, config } = await setup(t);
  const gw = startFerry(['gateway', '--config', config], { readyPattern: /ferry gateway listening on 127\.0\.0\.1:(\d+)/, logFile: join(dir, 'gateway.log') });
  t.teardown(() => stopProcess(gw, 2000));
  const port = Number((await gw.ready)[1]);
  const token = (await runFerry(['gateway', 'add-agent', '--config', config, '--agent', 'pi-1'])).stdout.trim();

  const hello = async (token: string) => sayHello(t, `tcp://127.0.0.1:${port}`, { agent: 'pi-1', token });
  // The gateway polls agents.json: the new agent shows up within about half a second.
  let live = await hello(token);
  for (let i = 0; live.first?.t !== FrameType.WELCOME && i < 40; i++) {
    await new Promise((r) => setTimeout(r, 100));
    live = await hello(token);
  }
  t.equal(live.first?.t, FrameType.WELCOME, 'the registered agent is welcomed without a gateway restart');
  const wrong = await hello('wrong');
  t.equal(wrong.first?.t === FrameType.BYE ? wrong.first.code : null, ErrorCode.AUTH_FAILED);

  t.equal((await runFerry(['gateway', 'revoke-agent', '--config', config, '--agent', 'pi-1'])).code, 0);
  const outcome = await Promise.race([live.tr.closed.then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open'), 5000))]);
  t.equal(outcome, 'closed', 'the live session ended');
  const bye = live.frames.find((f) => f.t === FrameType.BYE);
  t.equal(bye?.t === FrameType.BYE ? bye.code : null, ErrorCode.AUTH_REVOKED);
  t.notOk(gw.output().includes(token), 'the token is not in the gateway log');
});

/**
 * Configuration and argument errors through the real CLI process (dist/cli/ferry.js: run
 * `npx tsc -p .` first). Every bad configuration must stop the process before anything starts,
 * with CONFIG_INVALID and a message naming the file, the line and the field.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalApi } from '../../agent/local-api.js';
import { silentLog } from '../../common/log.js';
import type { PacketData } from '../../protocol/packet.js';
import { runFerry, type Run } from '../helpers/cli-run.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const ferry = fileURLToPath(new URL('../../dist/cli/ferry.js', import.meta.url));



/** A temporary directory outside the repository (short paths for sockets), removed after the test. */
async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** 1-based number of the first line of `text` that contains `needle`. */
function lineOf(text: string, needle: string): number {
  const index = text.split('\n').findIndex((line) => line.includes(needle));
  if (index < 0) throw new Error(`test setup: "${needle}" is not in the YAML text`);
  return index + 1;
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Asserts a run failed at load time with CONFIG_INVALID and `file:line: field:` in its message. */
function assertConfigInvalid(t: Test, run: Run, file: string, line: number, field: string, what: RegExp): void {
  t.not(run.code, 0, 'exits non-zero');
  t.equal(run.signal, null, 'exits by itself, does not hang');
  t.match(run.stderr, new RegExp(`${escape(file)}:${line}: ${escape(field)}: `), `stderr names ${file}:${line} and ${field}`);
  t.match(run.stderr, what, 'and says what is wrong');
  t.match(run.stderr, /\[CONFIG_INVALID\]/);
  t.notMatch(run.stdout, /listening|running/, 'nothing started');
}

function agentYaml(dir: string): string {
  return ['id: pi-1', 'gateway: tcp://127.0.0.1:7800', `dataDir: ${join(dir, 'agent-data')}`, 'store:', '  sync: always', 'rules:', '  - kind: heartbeat', '    everyMs: 1000', '    target: status/beat', ''].join('\n');
}

function gatewayYaml(dir: string): string {
  return ['listen:', '  tcp: 127.0.0.1:0', '  admin: 127.0.0.1:0', `dataDir: ${join(dir, 'gw-data')}`, 'routes:', '  - match: telemetry/#', '    handler: file', `    path: ${join(dir, 'out.jsonl')}`, ''].join('\n');
}

async function writeConfig(dir: string, name: string, text: string): Promise<string> {
  const { writeFile } = await import('node:fs/promises');
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

t.before(() => {
  if (!existsSync(ferry)) throw new Error(`${ferry} is missing: run \`npx tsc -p .\` first`);
});

t.test('cli config - agent: an unknown key names its line and says unknown key', async (t) => {
  const dir = await tempDir(t);
  const text = agentYaml(dir).replace('  sync: always', '  sync: always\n  colour: blue').replace('id: pi-1', 'id: pi-1\nname: kitchen');
  const file = await writeConfig(dir, 'agent.yaml', text);
  const run = await runFerry(['agent', '--config', file]);
  assertConfigInvalid(t, run, file, lineOf(text, 'colour:'), 'store.colour', /unknown key/);
  t.match(run.stderr, `${file}:${lineOf(text, 'name:')}: name: unknown key`, 'a top-level unknown key is reported too');
  t.notOk(existsSync(join(dir, 'agent-data')), 'the data directory was not created');
});

t.test('cli config - agent: a wrong type names its line and the expected type', async (t) => {
  const dir = await tempDir(t);
  const text = agentYaml(dir).replace('everyMs: 1000', 'everyMs: often');
  const file = await writeConfig(dir, 'agent.yaml', text);
  assertConfigInvalid(t, await runFerry(['agent', '--config', file]), file, lineOf(text, 'everyMs:'), 'rules.0.everyMs', /expected number, received string/);
});

t.test('cli config - agent: a missing field says missing and points at its parent mapping', async (t) => {
  const dir = await tempDir(t);
  const text = agentYaml(dir).replace('gateway: tcp://127.0.0.1:7800\n', '');
  const file = await writeConfig(dir, 'agent.yaml', text);
  // A missing top-level field points at the top-level mapping, which starts on line 1.
  assertConfigInvalid(t, await runFerry(['agent', '--config', file]), file, 1, 'gateway', /missing; expected string/);
});

t.test('cli config - gateway: an unknown key names its line and says unknown key', async (t) => {
  const dir = await tempDir(t);
  const text = gatewayYaml(dir).replace('  tcp: 127.0.0.1:0', '  tcp: 127.0.0.1:0\n  udp: 127.0.0.1:0');
  const file = await writeConfig(dir, 'gateway.yaml', text);
  assertConfigInvalid(t, await runFerry(['gateway', '--config', file]), file, lineOf(text, 'udp:'), 'listen.udp', /unknown key/);
});

t.test('cli config - gateway: a wrong type names its line and the expected type', async (t) => {
  const dir = await tempDir(t);
  const text = gatewayYaml(dir).replace('  tcp: 127.0.0.1:0', '  tcp: 127.0.0.1:0\nlimits:\n  connectionsMax: lots');
  const file = await writeConfig(dir, 'gateway.yaml', text);
  assertConfigInvalid(t, await runFerry(['gateway', '--config', file]), file, lineOf(text, 'connectionsMax:'), 'limits.connectionsMax', /expected number, received string/);
});

t.test('cli config - gateway: missing routes says missing', async (t) => {
  const dir = await tempDir(t);
  const text = gatewayYaml(dir).replace(/routes:[\s\S]*$/, '');
  const file = await writeConfig(dir, 'gateway.yaml', text);
  assertConfigInvalid(t, await runFerry(['gateway', '--config', file]), file, 1, 'routes', /missing; expected array/);
  t.notOk(existsSync(join(dir, 'gw-data')), 'the data directory was not created');
});

t.test("cli config - gateway: an invalid route pattern ('a/#/b') is refused at load time", async (t) => {
  const dir = await tempDir(t);
  const text = gatewayYaml(dir).replace('match: telemetry/#', 'match: a/#/b');
  const file = await writeConfig(dir, 'gateway.yaml', text);
  assertConfigInvalid(t, await runFerry(['gateway', '--config', file]), file, lineOf(text, 'match:'), 'routes.0.match', /invalid route pattern/);
  t.notOk(existsSync(join(dir, 'gw-data')), 'the data directory was not created');
});

for (const cmd of ['agent', 'gateway']) {
  t.test(`cli config - ${cmd}: a missing file names the path`, async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'absent.yaml');
    const run = await runFerry([cmd, '--config', file]);
    t.not(run.code, 0);
    t.match(run.stderr, `${file}: cannot read file (ENOENT)`);
    t.match(run.stderr, /\[CONFIG_INVALID\]/);
    t.notMatch(run.stdout, /listening|running/);
  });
}

t.test('cli config - a valid gateway configuration does start (control for the failures above)', async (t) => {
  const dir = await tempDir(t);
  const file = await writeConfig(dir, 'gateway.yaml', gatewayYaml(dir));
  const child = spawn(process.execPath, [ferry, 'gateway', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      if (out.includes('\n')) resolve(out);
    });
    child.once('exit', (code) => reject(new Error(`gateway exited with ${code} before it listened`)));
  });
  t.match(line, /^ferry gateway listening on 127\.0\.0\.1:\d+\n/);
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'stops cleanly on SIGTERM');
});

t.test('cli send - no agent listening: non-zero with AGENT_UNREACHABLE', async (t) => {
  const dir = await tempDir(t);
  const run = await runFerry(['send', '--socket', join(dir, 'agent.sock'), '--target', 'telemetry/temp', '--data', '{"t":21.5}']);
  t.not(run.code, 0);
  t.match(run.stderr, /\[AGENT_UNREACHABLE\]/);
  t.equal(run.stdout, '', 'no seq printed');
});

t.test('cli send - invalid JSON for --data: non-zero with LOCAL_REQUEST_INVALID, nothing sent', async (t) => {
  const dir = await tempDir(t);
  const socket = join(dir, 'agent.sock');
  const sent: unknown[] = [];
  const server = await startLocalApi(socket, { send: async (target, data) => sent.push({ target, data }), stats: () => ({}) }, { log: silentLog, dataBytesMax: 1024 });
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const run = await runFerry(['send', '--socket', socket, '--target', 'telemetry/temp', '--data', '{t: 21.5}']);
  t.not(run.code, 0);
  t.match(run.stderr, /--data is not valid JSON/);
  t.match(run.stderr, /\[LOCAL_REQUEST_INVALID\]/);
  t.same(sent, [], 'the agent received nothing');
});

t.test('cli send - a target over 255 bytes: non-zero with TARGET_INVALID, nothing stored', async (t) => {
  const dir = await tempDir(t);
  const socket = join(dir, 'agent.sock');
  const sent: { target: string; data: PacketData }[] = [];
  const server = await startLocalApi(socket, { send: async (target, data) => sent.push({ target, data }) + 6, stats: () => ({}) }, { log: silentLog, dataBytesMax: 1024 });
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const ok = await runFerry(['send', '--socket', socket, '--target', 'telemetry/temp', '--data', '{"t":21.5}']);
  t.equal(ok.code, 0, 'control: a valid send through the same socket succeeds');
  t.equal(ok.stdout, '7\n', 'and prints the seq the agent returned');
  t.same(sent, [{ target: 'telemetry/temp', data: { t: 21.5 } }]);

  const run = await runFerry(['send', '--socket', socket, '--target', 'a'.repeat(256), '--data', '1']);
  t.not(run.code, 0);
  t.match(run.stderr, /\[TARGET_INVALID\]/);
  t.equal(run.stdout, '');
  t.equal(sent.length, 1, 'the long target was not stored');
});

t.test('cli help - ferry --help exits 0 and lists every command', async (t) => {
  const run = await runFerry(['--help']);
  t.equal(run.code, 0);
  for (const cmd of ['gateway', 'agent', 'sim', 'send', 'demo']) t.match(run.stdout, new RegExp(`^  ${cmd} `, 'm'), cmd);
  t.match(run.stdout, /--help/);
});

for (const cmd of ['agent', 'gateway', 'sim', 'send']) {
  t.test(`cli help - ferry ${cmd} --help exits 0 and describes --config`, async (t) => {
    const run = await runFerry([cmd, '--help']);
    t.equal(run.code, 0);
    t.match(run.stdout, new RegExp(`^usage: ferry ${cmd} `));
    t.match(run.stdout, /^ {2}--config FILE/m);
    t.equal(run.stderr, '');
  });
}

t.test('cli help - ferry demo --help exits 0 and prints its usage', async (t) => {
  const run = await runFerry(['demo', '--help']);
  t.equal(run.code, 0);
  t.match(run.stdout, /^usage: ferry demo /);
});

t.test('cli - an unknown command or flag exits non-zero', async (t) => {
  const unknown = await runFerry(['ship']);
  t.not(unknown.code, 0);
  t.match(unknown.stderr, /unknown command 'ship'/);
  const dir = await tempDir(t);
  const flag = await runFerry(['gateway', '--config', await writeConfig(dir, 'g.yaml', gatewayYaml(dir)), '--colour', 'blue']);
  t.not(flag.code, 0);
  t.match(flag.stderr, /\[CONFIG_INVALID\]/);
});

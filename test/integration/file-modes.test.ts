/**
 * Issue 10, case 7: what ferry creates took its mode from the umask. A real gateway and agent run
 * with umask 000 (children inherit it); then every file and directory they created is stat'ed.
 * Needs `npx tsc -p tsconfig.json` (dist/) first.
 */
import t from 'tap';
import { lstat, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { localRequest } from '../../agent/local-api.js';
import { runFerry } from '../helpers/cli-run.js';
import { makeRig, waitFor } from '../helpers/ferry.js';

/** Every path under `root`, itself included. */
async function walk(root: string): Promise<string[]> {
  const out = [root];
  if (!(await lstat(root)).isDirectory()) return out;
  for (const name of await readdir(root)) out.push(...(await walk(join(root, name))));
  return out;
}

t.test('file modes - with umask 000, the data dirs, store, dead letters, agents.json, file output and the socket are not open to others', async (t) => {
  const umask = process.umask(0);
  t.teardown(() => { process.umask(umask); });
  const daemonGid = 1; // Debian's `daemon` group; the test runs as root, which may chown to it
  const rig = await makeRig({
    serial: false,
    gatewayYaml: 'auth:\n  required: true\nlimits:\n  packetBytesMax: 100\n',
    agentYaml: `socketGroup: ${daemonGid}`,
  });
  t.teardown(() => rig.cleanup());
  const out = join(rig.dir, 'out');
  // The file handler writes into a directory of its own making (sub); the one above is the operator's.
  await mkdir(out, { mode: 0o750 });
  const gatewayYaml = join(rig.dir, 'gateway.yaml');
  await writeFile(gatewayYaml, (await readFile(gatewayYaml, 'utf8')).replace(rig.received, join(out, 'sub', 'received.jsonl')));
  // An agent dataDir made earlier, open to everyone: tightened at start.
  await mkdir(join(rig.dir, 'agent'), { mode: 0o777 });
  t.equal((await lstat(join(rig.dir, 'agent'))).mode & 0o777, 0o777, 'setup: a world-writable agent dataDir');

  const gateway = await rig.start('gateway');
  // The rig registered it-agent; the CLI (under umask 000 too) rewrites agents.json for another.
  const added = await runFerry(['gateway', 'add-agent', '--config', join(rig.dir, 'gateway.yaml'), '--agent', 'other-agent']);
  t.equal(added.code, 0, `add-agent ran ${added.stderr}`);
  const agent = await rig.start('agent');
  for (let i = 0; i < 3; i++) t.match(await localRequest(rig.socket, { op: 'send', target: 'a/b', data: { i } }), { ok: true });
  t.match(await localRequest(rig.socket, { op: 'send', target: 'a/b', data: 'x'.repeat(200) }), { ok: true }, 'over the gateway packetBytesMax: a dead letter');
  await waitFor('three lines delivered and one dead letter', async () => {
    const s = await rig.agentStats();
    return s && s.acked >= 3 && s.deadLetters >= 1 ? true : undefined;
  });
  t.match(agent.output(), /data directory was open to other users: tightened/, 'the agent said it tightened its dataDir');
  t.equal((await lstat(join(rig.dir, 'agent'))).mode & 0o777, 0o750, 'tightened to 0750 (others and group write removed)');

  const socket = await lstat(rig.socket);
  t.equal(socket.mode & 0o777, 0o660, 'the local API socket is 0660');
  t.equal(socket.gid, daemonGid, 'in socketGroup');

  const paths = [...(await walk(join(rig.dir, 'gw'))), ...(await walk(join(rig.dir, 'agent'))), ...(await walk(out))].filter((p) => p !== rig.socket);
  const names = paths.map((p) => p.slice(rig.dir.length + 1));
  for (const expected of ['gw/agents.json', 'gw/LOCK', 'agent/store', 'agent/store/dead-letters.log', 'out/sub/received.jsonl']) {
    t.ok(names.includes(expected), `${expected} was created`);
  }
  t.ok(names.some((n) => /^agent\/store\/.*\.seg$|^agent\/store\/\d+/.test(n)), `a store segment was created (${names.filter((n) => n.startsWith('agent/store/')).join(', ')})`);
  t.ok(names.some((n) => n.startsWith('gw/') && n.includes('dispatch')), 'the dispatch log was created');
  const open: string[] = [];
  for (const p of paths) {
    const st = await lstat(p);
    const mode = st.mode & 0o777;
    const name = p.slice(rig.dir.length + 1);
    // Directories: nothing for others, no group write. Files: nothing for others, no group write or execute.
    const forbidden = st.isDirectory() ? 0o027 : 0o137;
    if (mode & forbidden) open.push(`${name} ${mode.toString(8)}`);
  }
  t.same(open, [], `none of the ${paths.length} paths is open to others or group-writable`);
  t.equal((await lstat(join(out, 'sub', 'received.jsonl'))).mode & 0o777, 0o640, 'file handler output 0640');
  t.equal((await lstat(join(out, 'sub'))).mode & 0o777, 0o750, 'and its directory 0750');
  t.equal((await lstat(join(rig.dir, 'gw', 'agents.json'))).mode & 0o777, 0o600, 'agents.json 0600');
  t.equal((await lstat(join(rig.dir, 'gw'))).mode & 0o777, 0o700, 'the gateway dataDir 0700');
  void gateway;
});

/**
 * test/helpers/netns.ts: inside a private network namespace a server listens on two ports; an
 * nftables rule there makes one unreachable (drop: the connect times out, since the SYN vanishes
 * and nobody answers; reject: refused at once by a TCP reset) while the other works; the host's
 * loopback and ruleset are untouched; delete() ends what ran inside and removes the namespace.
 * Needs root, as the firewall tests of issue 11 do.
 */
import t from 'tap';
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { createNetns, removeLeftoverNamespaces, type NetNs } from '../helpers/netns.js';

const connectTimeoutMs = 1500;

/** Node code run inside the namespace: tries each port once, prints {port: outcome} as JSON. */
const probeScript = `
const net = require('node:net');
const ports = process.argv.slice(1).map(Number);
Promise.all(ports.map((port) => new Promise((resolve) => {
  const s = net.connect({ host: '127.0.0.1', port });
  const t0 = Date.now();
  s.setTimeout(${connectTimeoutMs}, () => { s.destroy(); resolve([port, 'timeout']); });
  s.once('connect', () => { s.destroy(); resolve([port, 'connected']); });
  s.once('error', (e) => resolve([port, e.code]));
}))).then((r) => console.log(JSON.stringify(Object.fromEntries(r))));
`;

const serverScript = `
const net = require('node:net');
const ports = process.argv.slice(1).map(Number);
let n = 0;
for (const port of ports) net.createServer((s) => { s.on('error', () => {}); s.end('hi'); }).listen(port, '127.0.0.1', () => { if (++n === ports.length) console.log('ready'); });
`;

async function probe(ns: NetNs, ports: number[]): Promise<Record<string, string>> {
  const { stdout } = await ns.run(process.execPath, ['-e', probeScript, ...ports.map(String)]);
  return JSON.parse(stdout) as Record<string, string>;
}

function startServer(ns: NetNs, ports: number[]): Promise<ChildProcess> {
  const child = ns.spawn(process.execPath, ['-e', serverScript, ...ports.map(String)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`server in ${ns.name} exited with ${code}`)));
  });
}

function hostCanConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.setTimeout(connectTimeoutMs, () => { s.destroy(); resolve(false); });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

const namespaces = (): string => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });

t.test('netns helper - a rule in the namespace blocks one port, passes another, and leaves the host alone', async (t) => {
  // A host server on some port: the namespace then blocks that same port number inside itself.
  const host = createServer((s) => { s.on('error', () => {}); s.end('host'); }); // probes reset their sockets
  await new Promise<void>((resolve) => host.listen({ host: '127.0.0.1', port: 0 }, resolve));
  t.teardown(() => host.close());
  const blocked = (host.address() as { port: number }).port;
  const passed = blocked === 7443 ? 7444 : 7443;

  const ns = await createNetns();
  t.teardown(() => ns.delete());
  t.match(ns.name, /^ferry-\d+-[0-9a-f]{8}$/);
  t.match(namespaces(), ns.name, 'the namespace exists');
  const { stdout: links } = await ns.run('ip', ['-o', 'link', 'show', 'lo']);
  t.match(links, /state UNKNOWN|LOOPBACK,UP/, 'its loopback is up');

  const server = await startServer(ns, [blocked, passed]);
  t.same(await probe(ns, [blocked, passed]), { [blocked]: 'connected', [passed]: 'connected' }, 'before the rule both ports answer');

  await ns.firewall({ blockTcpPorts: [blocked], passTcpPorts: [passed] });
  t.match(await ns.ruleset(), new RegExp(`tcp dport ${blocked} drop`), 'the rule is in the namespace');
  t.same(await probe(ns, [blocked, passed]), { [blocked]: 'timeout', [passed]: 'connected' },
    'drop: a connect to the blocked port times out (its SYN is dropped, nothing answers); the other port works');
  t.ok(await hostCanConnect(blocked), 'outside the namespace the same port number still connects');
  t.notMatch(execFileSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }), /ferry_test/, "the host's ruleset has no table of ours");

  await ns.firewall({ blockTcpPorts: [blocked], passTcpPorts: [passed], action: 'reject' });
  t.same(await probe(ns, [blocked, passed]), { [blocked]: 'ECONNREFUSED', [passed]: 'connected' },
    'reject: the connect is refused at once (a TCP reset answers the SYN)');

  await ns.firewall({ blockTcpPorts: [passed] });
  t.same(await probe(ns, [blocked, passed]), { [blocked]: 'connected', [passed]: 'timeout' }, 'replacing the rules swaps the ports (one transaction, no leftovers)');

  await ns.clearFirewall();
  t.same(await probe(ns, [blocked, passed]), { [blocked]: 'connected', [passed]: 'connected' }, 'after clearFirewall both answer again');

  await ns.delete();
  t.ok(server.exitCode !== null || server.signalCode !== null, 'delete() ended the server inside');
  t.notMatch(namespaces(), ns.name, 'the namespace is gone');
  await ns.delete();
  t.pass('delete() twice is fine');
});

t.test('netns helper - leftovers of a dead process are found and removed, live ones kept', async (t) => {
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!; // a PID whose process has exited
  const leftover = `ferry-${dead}-deadbeef`;
  execFileSync('ip', ['netns', 'add', leftover]);
  t.teardown(() => { try { execFileSync('ip', ['netns', 'del', leftover], { stdio: 'ignore' }); } catch { /* removed by the test */ } });
  const live = await createNetns();
  t.teardown(() => live.delete());

  const removed = await removeLeftoverNamespaces();
  t.ok(removed.includes(leftover), `${leftover} was removed`);
  t.notOk(removed.includes(live.name), 'the namespace of this (live) process was kept');
  t.notMatch(namespaces(), leftover);
  t.match(namespaces(), live.name);
});

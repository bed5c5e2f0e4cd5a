import t from 'tap';
import { readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { agentConfigSchema } from '../../agent/config.js';
import { localRequest } from '../../agent/local-api.js';
import { stopProcess } from '../../cli/proc.js';
import { runFerry } from '../helpers/cli-run.js';
import { makeRig, waitFor } from '../helpers/ferry.js';

/**
 * `name{labels} value` or `name value`: the text exposition format's sample line. Prometheus reads
 * the value with Go's ParseFloat, which takes NaN in any case; prom-client writes `Nan`.
 */
const sampleLine = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})? (-?[0-9.e+-]+|[Nn]a[Nn]|[+-]Inf)$/;

async function scrape(url: string): Promise<Map<string, number>> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    if (!sampleLine.test(line)) throw new Error(`not a sample line: ${line}`);
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

t.test('agent metrics - GET /metrics parses, its gauges show the backlog, counters grow with sends and acks', async (t) => {
  const rig = await makeRig({ agentId: 'metrics-1', serial: false, agentYaml: 'metrics: { listen: "127.0.0.1:0" }' });
  t.teardown(() => rig.cleanup());
  const agent = await rig.start('agent');
  const url = agent.output().match(/ferry agent metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/)?.[1];
  t.ok(url, 'the address is printed at start');
  const before = await scrape(url!);
  t.equal(before.get('ferry_agent_stored_total'), 0);
  t.equal(before.get('ferry_agent_link_up'), 0, 'link down: no gateway yet');
  t.equal(before.get('ferry_agent_store_capacity_bytes'), 256 * 2 ** 20);
  t.ok(before.has('process_resident_memory_bytes'), 'process default metrics are there');
  for (let i = 0; i < 5; i++) await localRequest(rig.socket, { op: 'send', target: 'm/x', data: { i } });
  const queued = await scrape(url!);
  t.equal(queued.get('ferry_agent_stored_total'), 5, 'stored_total grew by the sends');
  t.equal(queued.get('ferry_agent_backlog_packets'), 5);
  t.ok(queued.get('ferry_agent_backlog_bytes')! > 0);
  t.ok(queued.get('ferry_agent_oldest_packet_age_seconds')! >= 0);
  t.ok(queued.get('ferry_agent_store_commit_seconds_count')! >= 5, 'each commit observed in the histogram');
  t.ok(queued.get('ferry_agent_store_used_bytes')! > before.get('ferry_agent_store_used_bytes')!);

  await rig.start('gateway');
  await waitFor('acked', async () => ((await scrape(url!)).get('ferry_agent_acked_total') === 5 ? true : undefined));
  const after = await scrape(url!);
  t.equal(after.get('ferry_agent_link_up'), 1);
  t.equal(after.get('ferry_agent_backlog_packets'), 0);
  t.equal(after.get('ferry_agent_in_flight_packets'), 0);
  t.equal(after.get('ferry_agent_dropped_total{reason="oldest"}'), 0);
  const notFound = await fetch(url!.replace('/metrics', '/other'));
  t.equal(notFound.status, 404, 'only /metrics is served');
  await stopProcess(agent);
});

t.test('agent metrics - an unknown target counts a NACK by code', async (t) => {
  const rig = await makeRig({ agentId: 'metrics-2', serial: false, agentYaml: 'metrics: { listen: 0 }', routes: '  - match: "good/#"\n    handler: file\n    path: {received}\n' });
  t.teardown(() => rig.cleanup());
  await rig.start('gateway');
  const agent = await rig.start('agent');
  const url = agent.output().match(/ferry agent metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/)![1]!;
  await localRequest(rig.socket, { op: 'send', target: 'bad/x', data: 1 });
  const m = await waitFor('the NACK', async () => {
    const s = await scrape(url);
    return s.get('ferry_agent_dead_letters') === 1 ? s : undefined;
  });
  t.equal(m.get('ferry_agent_nacked_total{code="UNKNOWN_TARGET"}'), 1);
});

/** TCP ports the process listens on: its socket inodes found among the LISTEN entries of /proc/net/tcp{,6}. */
async function listeningPorts(pid: number): Promise<number[]> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const m = (await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')).match(/^socket:\[(\d+)\]$/);
    if (m) inodes.add(m[1]!);
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of (await readFile(table, 'utf8').catch(() => '')).split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '0A' && inodes.has(f[9]!)) ports.push(parseInt(f[1]!.split(':')[1]!, 16));
    }
  }
  return ports;
}

t.test('agent metrics - off by default: nothing printed, no TCP port listened on', async (t) => {
  const rig = await makeRig({ agentId: 'metrics-3', serial: false });
  t.teardown(() => rig.cleanup());
  const agent = await rig.start('agent');
  t.notMatch(agent.output(), /metrics on/, 'no metrics line');
  t.same(await listeningPorts(agent.pid), [], 'the agent listens on no TCP port');
  // The check itself sees a listener: the same agent with metrics on has one.
  await stopProcess(agent);
  await writeFile(join(rig.dir, 'agent.yaml'), `${await readFile(join(rig.dir, 'agent.yaml'), 'utf8')}metrics: { listen: 0 }\n`);
  const withMetrics = await rig.start('agent');
  const port = Number(withMetrics.output().match(/metrics on http:\/\/127\.0\.0\.1:(\d+)/)![1]);
  t.same(await listeningPorts(withMetrics.pid), [port], 'with metrics.listen: exactly the metrics port');
});

t.test('agent metrics - a non-loopback host is refused at load unless allowRemote; nothing is created', async (t) => {
  const rig = await makeRig({ agentId: 'metrics-4', serial: false, agentYaml: 'metrics: { listen: "0.0.0.0:0" }' });
  t.teardown(() => rig.cleanup());
  const r = await runFerry(['agent', '--config', join(rig.dir, 'agent.yaml')]);
  t.equal(r.code, 1);
  t.match(r.stderr, /metrics\.listen/, 'names the key');
  t.match(r.stderr, /0\.0\.0\.0 is not a loopback address/, 'and why');
  t.match(r.stderr, /\[CONFIG_INVALID\]/);
  await t.rejects(stat(join(rig.dir, 'agent')), 'the data dir was not created');
  const base = { id: 'a', gateway: 'tcp://127.0.0.1:1', dataDir: '/d' };
  t.ok(agentConfigSchema.safeParse({ ...base, metrics: { listen: '0.0.0.0:9464', allowRemote: true } }).success, 'allowed with allowRemote: true');
  t.ok(agentConfigSchema.safeParse({ ...base, metrics: { listen: '[::1]:9464' } }).success, '::1 is loopback');
  t.notOk(agentConfigSchema.safeParse({ ...base, metrics: { listen: '127.0.0.1:99999' } }).success, 'a port past 65535 is refused');
});

import t from 'tap';
import { createServer } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runFerry } from '../helpers/cli-run.js';
import { makeRig, waitFor } from '../helpers/ferry.js';
import { adminUrlOf, getStatus } from '../helpers/admin.js';
import { runGatewayStatus } from '../../cli/status-gateway.js';
import { freePort } from '../helpers/free-port.js';

/** What `ferry status --gateway …` prints (run in this process, stdout captured). */
async function statusOutput(args: string[]): Promise<string> {
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => ((out += chunk), true)) as typeof process.stdout.write;
  try {
    await runGatewayStatus(args);
  } finally {
    process.stdout.write = write;
  }
  return out;
}

/** One sample line of the Prometheus text format: name{labels} value. */
const sampleLine = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/;

function metric(text: string, line: string): number | undefined {
  const m = text.split('\n').find((l) => l.startsWith(`${line} `));
  return m === undefined ? undefined : Number(m.slice(line.length + 1));
}

t.test('gateway admin - /status shows the agent live; /metrics parses and its counters rise', async (t) => {
  const rig = await makeRig({ agentId: 'adm-1', gatewayYaml: 'limits:\n  pingIntervalMs: 300\n' });
  t.teardown(() => rig.cleanup());
  await rig.start('sim');
  const gw = await rig.start('gateway');
  const url = await adminUrlOf(gw);
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/, 'the admin URL is printed with its bound port');
  await rig.start('agent');

  const s = await waitFor('the agent connected with a rate and a PING backlog', async () => {
    const st = await getStatus(url);
    const a = st.agents.find((x) => x.id === 'adm-1');
    return a && a.state === 'connected' && a.packetsPerSecond > 0 && a.backlog !== null ? st : undefined;
  });
  const a = s.agents[0]!;
  t.equal(a.transport, 'tcp', 'transport tcp');
  t.equal(a.address, '127.0.0.1', 'remote address');
  t.type(a.backlog?.backlogPackets, 'number', 'the backlog from PING');
  t.same(s.listeners.map((l) => l.kind).sort(), ['admin', 'tcp'], 'both listeners');
  t.equal(s.listeners.find((l) => l.kind === 'tcp')?.port, rig.port, 'the tunnel port');
  const route = s.routes.find((r) => r.route === '#');
  t.equal(route?.health.state, 'ok', 'the file handler is healthy');
  t.ok(route!.dispatched > 0, 'dispatches counted per route');

  const m1 = await (await fetch(`${url}/metrics`)).text();
  const bad = m1.split('\n').filter((l) => l !== '' && !l.startsWith('# HELP ') && !l.startsWith('# TYPE ') && !sampleLine.test(l));
  t.same(bad, [], 'every line is a comment or a sample of the Prometheus text format');
  for (const name of ['ferry_gateway_dispatched_total', 'ferry_gateway_dispatch_failures_total', 'ferry_gateway_agents_connected', 'ferry_gateway_sessions_total', 'ferry_gateway_downlink_queued_messages', 'ferry_gateway_dispatch_latency_seconds', 'ferry_gateway_log_commit_seconds', 'process_cpu_seconds_total']) {
    t.match(m1, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is exposed`);
  }
  t.equal(metric(m1, 'ferry_gateway_agents_connected'), 1, 'one agent connected');
  t.equal(metric(m1, 'ferry_gateway_sessions_total'), 1, 'one session so far');
  const d1 = metric(m1, 'ferry_gateway_dispatched_total{route="#"}')!;
  t.ok(d1 > 0, `dispatched ${d1}`);
  t.ok(metric(m1, 'ferry_gateway_log_commit_seconds_count')! > 0, 'dispatch log commits timed');
  const d2 = await waitFor('the counter to rise', async () => {
    const n = metric(await (await fetch(`${url}/metrics`)).text(), 'ferry_gateway_dispatched_total{route="#"}')!;
    return n > d1 ? n : undefined;
  });
  t.ok(d2 > d1, `the counter rose (${d1} -> ${d2})`);

  const h = (await (await fetch(`${url}/history`)).json()) as { bucketMs: number; buckets: { dispatched: number }[] };
  t.equal(h.buckets.length, 360, 'an hour of 10 s buckets');
  t.ok(h.buckets.some((b) => b.dispatched > 0), 'the history holds the dispatches');

  const text = await statusOutput(['--gateway', url]);
  t.match(text, /^agents: 1 connected, 0 disconnected$/m, 'ferry status: the agents line');
  t.match(text, /^  adm-1  connected  tcp 127\.0\.0\.1  since \d+s ago.* reconnects 0  backlog \d+ packets/m, 'ferry status: the agent with transport, address and backlog');
  t.match(text, /^  #  file  ok  [\d.]+\/s \(\d+ dispatched\)/m, 'ferry status: the route, its handler and health');
  const json = JSON.parse(await statusOutput(['--gateway', url, '--json'])) as { agents: { id: string }[] };
  t.same(json.agents.map((x) => x.id), ['adm-1'], 'ferry status --json: the same data');
  await t.rejects(runGatewayStatus(['--gateway', `http://127.0.0.1:${await freePort()}`]), { code: 'ADMIN_UNREACHABLE' }, 'nothing listening: ADMIN_UNREACHABLE');

  const notFound = await fetch(`${url}/nope`);
  t.equal(notFound.status, 404);
  t.same(await notFound.json(), { code: 'ADMIN_NOT_FOUND', message: 'no /nope here: try /, /status, /history or /metrics' }, 'a refusal is JSON { code, message }');
  const post = await fetch(`${url}/status`, { method: 'POST', body: 'x' });
  t.equal(post.status, 405);
  t.equal(((await post.json()) as { code: string }).code, 'ADMIN_METHOD_NOT_ALLOWED');
});

t.test('gateway admin - a token is needed when one is set: 401 without it, 200 with it', async (t) => {
  const rig = await makeRig({ agentId: 'adm-2' });
  t.teardown(() => rig.cleanup());
  const tokenFile = join(rig.dir, 'admin.token');
  const token = 'x'.repeat(8) + 'Secret-Token-1234';
  await writeFile(tokenFile, `${token}\n`);
  await writeFile(join(rig.dir, 'gateway.yaml'), `${await readFile(join(rig.dir, 'gateway.yaml'), 'utf8')}admin:\n  tokenFile: ${tokenFile}\n`);
  const gw = await rig.start('gateway');
  const url = await adminUrlOf(gw);
  const without = await fetch(`${url}/status`);
  t.equal(without.status, 401, 'no Authorization: 401');
  t.equal(((await without.json()) as { code: string }).code, 'ADMIN_AUTH_FAILED');
  const wrong = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}x` } });
  t.equal(wrong.status, 401, 'another token: 401');
  const right = await fetch(`${url}/status`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(right.status, 200, 'the token: 200');
  t.equal(((await right.json()) as { role: string }).role, 'gateway');
  await t.rejects(runGatewayStatus(['--gateway', url]), { code: 'ADMIN_AUTH_FAILED' }, 'ferry status without the token: ADMIN_AUTH_FAILED');
  t.match(await statusOutput(['--gateway', url, '--token-file', tokenFile]), /^gateway: up /, 'ferry status --token-file: the summary');
});

t.test('gateway admin - a non-loopback admin without a token is refused at load, naming the key', async (t) => {
  const rig = await makeRig({ agentId: 'adm-3' });
  t.teardown(() => rig.cleanup());
  const yaml = join(rig.dir, 'gateway.yaml');
  const text = await readFile(yaml, 'utf8');
  await writeFile(yaml, text.replace('  admin: 127.0.0.1:0\n', '  admin: 0.0.0.0:0\n'));
  const r = await runFerry(['gateway', '--config', yaml]);
  t.equal(r.code, 1, 'the gateway does not start');
  t.match(r.stderr, /admin\.tokenFile/, 'the message names admin.tokenFile');
  t.match(r.stderr, /\[CONFIG_INVALID\]/, 'CONFIG_INVALID');
});

t.test('gateway admin - a taken admin port is LISTEN_FAILED naming listen.admin', async (t) => {
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => holder.close(() => resolve())));
  const taken = (holder.address() as { port: number }).port;
  const rig = await makeRig({ agentId: 'adm-4' });
  t.teardown(() => rig.cleanup());
  const yaml = join(rig.dir, 'gateway.yaml');
  const text = await readFile(yaml, 'utf8');
  await writeFile(yaml, text.replace('  admin: 127.0.0.1:0\n', `  admin: 127.0.0.1:${taken}\n`));
  const r = await runFerry(['gateway', '--config', yaml]);
  t.equal(r.code, 1, 'the gateway does not start');
  t.match(r.stderr, new RegExp(`listen\\.admin 127\\.0\\.0\\.1:${taken}: the address is in use .*\\[LISTEN_FAILED\\]`), 'LISTEN_FAILED naming the key and the address');
  t.notMatch(r.stdout, /ferry gateway listening/, 'no listener was announced');
});

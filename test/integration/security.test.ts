/**
 * Real `ferry gateway` and `ferry agent` processes over TLS with authentication required
 * (dist/cli/ferry.js: run `npx tsc -p .` first): an agent with a token and one with a client
 * certificate deliver packets; revoking one ends its session while the other goes on.
 */
import t from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localRequest } from '../../agent/local-api.js';
import { startFerry, stopProcess, type FerryProcess } from '../../cli/proc.js';
import { runFerry } from '../helpers/cli-run.js';
import { makeCerts } from '../helpers/certs.js';
import { waitFor } from '../helpers/ferry.js';


t.test('security - agents over TLS with a token and with a client certificate; revoke-agent ends one', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-sec-'));
  const procs: FerryProcess[] = [];
  t.teardown(async () => {
    await Promise.all(procs.map((p) => stopProcess(p, 2000)));
    await rm(dir, { recursive: true, force: true });
  });
  const certs = makeCerts(join(dir, 'certs'));
  const received = join(dir, 'received.jsonl');
  const gatewayYaml = join(dir, 'gateway.yaml');
  await writeFile(gatewayYaml, [
    'listen: { tls: 127.0.0.1:0 }',
    `tls: { cert: ${certs.main.gateway.cert}, key: ${certs.main.gateway.key}, ca: ${certs.main.ca} }`,
    'auth: { required: true }',
    `dataDir: ${join(dir, 'gw')}`,
    'routes:', `  - { match: "#", handler: file, path: ${received} }`, '',
  ].join('\n'));
  const added = await runFerry(['gateway', 'add-agent', '--config', gatewayYaml, '--agent', 'pi-token']);
  t.equal(added.code, 0, added.stderr);
  const token = added.stdout.trim();

  const gw = startFerry(['gateway', '--config', gatewayYaml], { readyPattern: /ferry gateway listening on tls:\/\/127\.0\.0\.1:(\d+)/, logFile: join(dir, 'gateway.log') });
  procs.push(gw);
  const port = Number((await gw.ready)[1]);

  const agent = async (id: string, extra: string[]): Promise<{ proc: FerryProcess; socket: string }> => {
    const socket = join(dir, `${id}.sock`);
    const yaml = join(dir, `${id}.yaml`);
    await writeFile(yaml, [`id: ${id}`, `gateway: tls://localhost:${port}`, `dataDir: ${join(dir, id)}`, `socket: ${socket}`,
      'link: { reconnectDelayMsMin: 50, reconnectDelayMsMax: 300 }', ...extra, ''].join('\n'));
    const proc = startFerry(['agent', '--config', yaml], { readyPattern: /ferry agent running/, logFile: join(dir, `${id}.log`) });
    procs.push(proc);
    await proc.ready;
    return { proc, socket };
  };
  const withToken = await agent('pi-token', [`token: ${token}`, `tls: { ca: ${certs.main.ca} }`]);
  const client = certs.main.client('pi-cert');
  const withCert = await agent('pi-cert', [`tls: { ca: ${certs.main.ca}, cert: ${client.cert}, key: ${client.key} }`]);

  const send = async (socket: string, n: number): Promise<void> => {
    const r = await localRequest(socket, { op: 'send', target: 'sec/test', data: { n } });
    t.ok(r.ok, `sent ${n}`);
  };
  const lines = async (): Promise<{ agent: string; data: { n: number } }[]> =>
    (await readFile(received, 'utf8').catch(() => '')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
  await send(withToken.socket, 1);
  await send(withCert.socket, 2);
  await waitFor('both packets', async () => ((await lines()).length >= 2 ? true : undefined), 15_000);
  t.same((await lines()).map((l) => `${l.agent}:${l.data.n}`).sort(), ['pi-cert:2', 'pi-token:1'], 'both agents delivered over TLS');

  t.equal((await runFerry(['gateway', 'revoke-agent', '--config', gatewayYaml, '--agent', 'pi-token'])).code, 0);
  await waitFor('the revoked agent to log AUTH_REVOKED', async () => (withToken.proc.output().includes('"code":"AUTH_REVOKED"') ? true : undefined), 10_000);
  await send(withToken.socket, 3);
  await send(withCert.socket, 4);
  await waitFor('the certificate agent to go on', async () => ((await lines()).some((l) => l.data.n === 4) ? true : undefined), 15_000);
  t.notOk((await lines()).some((l) => l.data.n === 3), 'the revoked agent delivers nothing more (its packet stays in its store)');
  t.notOk(gw.output().includes(token), 'the token is not in the gateway log');
});

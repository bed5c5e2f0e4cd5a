/**
 * Issue 10 case 8, with real `ferry gateway` and `ferry agent` processes over TLS, auth required
 * (dist/cli/ferry.js: run `npx tsc -p .` first). A credential taken away while its session is
 * live must end that session, and the agent must not get back in with it:
 * - `issue-token` for an agent with a token: its session ends and the old token is refused (AUTH_FAILED);
 * - `revoke-agent` for an agent that authenticates by client certificate alone (never registered):
 *   its session ends and the certificate is refused (AUTH_REVOKED).
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

/** How often the agent logged a disconnect with `code` (the end of a live session and each refused HELLO). */
const disconnects = (p: FerryProcess, code: string): number =>
  p.output().split('\n').filter((l) => l.includes('link: disconnected') && l.includes(`"code":"${code}"`)).length;

t.test('security - issue-token ends the session opened with the old token; revoke-agent ends a certificate-only agent', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-stale-'));
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
    'auth: { required: true, clientCert: accept }',
    `dataDir: ${join(dir, 'gw')}`,
    'routes:', `  - { match: "#", handler: file, path: ${received} }`, '',
  ].join('\n'));
  const added = await runFerry(['gateway', 'add-agent', '--config', gatewayYaml, '--agent', 'pi-token']);
  t.equal(added.code, 0, added.stderr);
  const oldToken = added.stdout.trim();

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
  const withToken = await agent('pi-token', [`token: ${oldToken}`, `tls: { ca: ${certs.main.ca} }`]);
  const client = certs.main.client('pi-cert');
  const withCert = await agent('pi-cert', [`tls: { ca: ${certs.main.ca}, cert: ${client.cert}, key: ${client.key} }`]);

  const lines = async (): Promise<{ agent: string; data: { n: number } }[]> =>
    (await readFile(received, 'utf8').catch(() => '')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
  t.ok((await localRequest(withToken.socket, { op: 'send', target: 'sec/test', data: { n: 1 } })).ok);
  t.ok((await localRequest(withCert.socket, { op: 'send', target: 'sec/test', data: { n: 2 } })).ok);
  await waitFor('both packets', async () => ((await lines()).length >= 2 ? true : undefined), 15_000);
  t.same((await lines()).map((l) => `${l.agent}:${l.data.n}`).sort(), ['pi-cert:2', 'pi-token:1'], 'both agents have live sessions');
  t.equal(disconnects(withToken.proc, 'AUTH_FAILED'), 0, 'no refusal yet');

  // Two subtests on the one gateway, so that each can fail on its own.
  await t.test('issue-token ends the session opened with the old token', async (t) => {
    const issued = await runFerry(['gateway', 'issue-token', '--config', gatewayYaml, '--agent', 'pi-token']);
    t.equal(issued.code, 0, issued.stderr);
    // Two: the live session ended (BYE AUTH_FAILED), then the agent's HELLO with its old token refused.
    await waitFor('the old-token session to end and its HELLO to be refused', async () => (disconnects(withToken.proc, 'AUTH_FAILED') >= 2 ? true : undefined), 15_000);
    t.pass('the session opened with the old token ended, and the old token is refused with AUTH_FAILED');
    t.equal(disconnects(withCert.proc, 'AUTH_FAILED') + disconnects(withCert.proc, 'AUTH_REVOKED'), 0, "another agent's session is untouched");
    t.notOk(gw.output().includes(oldToken) || gw.output().includes(issued.stdout.trim()), 'no token in the gateway log');
  });

  await t.test('revoke-agent ends a certificate-only agent and refuses its certificate', async (t) => {
    const revoked = await runFerry(['gateway', 'revoke-agent', '--config', gatewayYaml, '--agent', 'pi-cert']);
    t.equal(revoked.code, 0, `revoke-agent of a certificate-only agent succeeds: ${revoked.stderr.trim()}`);
    t.equal(revoked.stdout, 'agent pi-cert revoked\n');
    t.match(revoked.stderr, /was not registered; it is recorded as revoked/);
    await waitFor('the certificate session to end and its HELLO to be refused', async () => (disconnects(withCert.proc, 'AUTH_REVOKED') >= 2 ? true : undefined), 15_000);
    t.pass('the certificate-only session ended, and its certificate is refused with AUTH_REVOKED');
  });
});

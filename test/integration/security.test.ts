/**
 * Real `ferry gateway` and `ferry agent` processes over TLS with authentication required
 * (dist/cli/ferry.js: run `npx tsc -p .` first): an agent with a token and one with a client
 * certificate deliver packets; revoking one ends its session while the other goes on.
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { localRequest } from '../../agent/local-api.js';
import { runFerry } from '../helpers/cli-run.js';
import { waitFor } from '../helpers/ferry.js';
import { startTlsFleet } from '../helpers/tls-fleet.js';


t.test('security - agents over TLS with a token and with a client certificate; revoke-agent ends one', async (t) => {
  const { certs, gatewayYaml, received, agent, token, gw } = await startTlsFleet(t, 'auth: { required: true }');
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

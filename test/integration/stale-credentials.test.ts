/**
 * Issue 10 case 8, with real `ferry gateway` and `ferry agent` processes over TLS, auth required
 * (dist/cli/ferry.js: run `npx tsc -p .` first). A credential taken away while its session is
 * live must end that session, and the agent must not get back in with it:
 * - `issue-token` for an agent with a token: its session ends and the old token is refused (AUTH_FAILED);
 * - `revoke-agent` for an agent that authenticates by client certificate alone (never registered):
 *   its session ends and the certificate is refused (AUTH_REVOKED).
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { localRequest } from '../../agent/local-api.js';
import type { FerryProcess } from '../../cli/proc.js';
import { runFerry } from '../helpers/cli-run.js';
import { waitFor } from '../helpers/ferry.js';
import { startTlsFleet } from '../helpers/tls-fleet.js';

/** How often the agent logged a disconnect with `code` (the end of a live session and each refused HELLO). */
const disconnects = (p: FerryProcess, code: string): number =>
  p.output().split('\n').filter((l) => l.includes('link: disconnected') && l.includes(`"code":"${code}"`)).length;

t.test('security - issue-token ends the session opened with the old token; revoke-agent ends a certificate-only agent', async (t) => {
  const { certs, gatewayYaml, received, agent, token: oldToken, gw } = await startTlsFleet(t, 'auth: { required: true, clientCert: accept }');
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

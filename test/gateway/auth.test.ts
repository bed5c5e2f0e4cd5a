import t from 'tap';
import { AgentRegistry } from '../../gateway/agents.js';
import { authenticate, createAuthenticator, recheck, type AuthConfig, type AuthResult } from '../../gateway/auth.js';
import { silentLog } from '../../common/log.js';
import { ErrorCode } from '../../protocol/errors.js';
import type { PeerInfo } from '../../protocol/transport.js';

const plain: PeerInfo = { address: '127.0.0.1', tls: false };
const tlsNoCert: PeerInfo = { address: '127.0.0.1', tls: true };
const certFor = (cn: string): PeerInfo => ({ address: '127.0.0.1', tls: true, certSubject: cn });

t.test('auth - the decision matrix', async (t) => {
  const registry = await AgentRegistry.open(t.testdir(), { log: silentLog, watchIntervalMs: 0 });
  t.teardown(() => registry.close());
  const token = await registry.add('pi-1');
  await registry.add('pi-gone');
  await registry.revoke('pi-gone');
  const wrong = `${token.slice(0, -2)}zz`;

  /** the code of a refusal, or how an admitted agent proved who it is */
  type Row = [string, AuthConfig, { agent: string; token?: string }, PeerInfo | undefined, ErrorCode | 'token' | 'certificate' | 'none'];
  const open: AuthConfig = { required: false, clientCert: 'accept' };
  const req: AuthConfig = { required: true, clientCert: 'accept' };
  const reqOff: AuthConfig = { required: true, clientCert: 'off' };
  const certOnly: AuthConfig = { required: false, clientCert: 'require' };
  const rows: Row[] = [
    ['not required: an unknown agent without token', open, { agent: 'anyone' }, plain, 'none'],
    ['not required: no peer info at all', open, { agent: 'anyone' }, undefined, 'none'],
    ['not required: a revoked agent is still refused', open, { agent: 'pi-gone' }, plain, ErrorCode.AUTH_REVOKED],
    ['not required: a revoked agent with a matching certificate is refused', open, { agent: 'pi-gone' }, certFor('pi-gone'), ErrorCode.AUTH_REVOKED],
    ['not required: a certificate for another agent', open, { agent: 'pi-1' }, certFor('pi-2'), ErrorCode.AUTH_AGENT_MISMATCH],
    ['required: registered agent, right token', req, { agent: 'pi-1', token }, plain, 'token'],
    ['required: right token over TLS without a certificate', req, { agent: 'pi-1', token }, tlsNoCert, 'token'],
    ['required: wrong token', req, { agent: 'pi-1', token: wrong }, plain, ErrorCode.AUTH_FAILED],
    ['required: no token', req, { agent: 'pi-1' }, plain, ErrorCode.AUTH_FAILED],
    ['required: empty token', req, { agent: 'pi-1', token: '' }, plain, ErrorCode.AUTH_FAILED],
    ["required: another agent's token", req, { agent: 'pi-2', token }, plain, ErrorCode.AUTH_FAILED],
    ['required: unknown agent', req, { agent: 'stranger', token }, plain, ErrorCode.AUTH_FAILED],
    ['required: revoked agent', req, { agent: 'pi-gone', token }, plain, ErrorCode.AUTH_REVOKED],
    ['required: a verified certificate for the agent needs no token', req, { agent: 'pi-1' }, certFor('pi-1'), 'certificate'],
    ['required: a verified certificate for an unregistered agent is enough', req, { agent: 'cert-only' }, certFor('cert-only'), 'certificate'],
    ['required: a certificate naming another agent, even with the right token', req, { agent: 'pi-1', token }, certFor('pi-9'), ErrorCode.AUTH_AGENT_MISMATCH],
    ['clientCert off: the certificate is ignored, the token decides', reqOff, { agent: 'pi-1', token }, certFor('pi-9'), 'token'],
    ['clientCert off: a certificate alone is not enough', reqOff, { agent: 'pi-1' }, certFor('pi-1'), ErrorCode.AUTH_FAILED],
    ['clientCert require: a certificate for the agent', certOnly, { agent: 'pi-1' }, certFor('pi-1'), 'certificate'],
    ['clientCert require: no certificate, even with the right token', certOnly, { agent: 'pi-1', token }, tlsNoCert, ErrorCode.AUTH_FAILED],
    ['clientCert require: plaintext', certOnly, { agent: 'pi-1', token }, plain, ErrorCode.AUTH_FAILED],
  ];
  for (const [what, config, hello, peer, expected] of rows) {
    const r: AuthResult = authenticate(hello, peer, config, registry);
    if (expected === 'token' || expected === 'certificate' || expected === 'none') t.same(r.ok ? r.credential.by : r.code, expected, what);
    else {
      t.equal(r.ok ? 'ok' : r.code, expected, what);
      if (!r.ok && hello.token) t.notOk(r.message.includes(hello.token), `${what}: the message does not echo the token`);
    }
  }
});

t.test('auth - createAuthenticator binds config and registry, and sees registry changes', async (t) => {
  const registry = await AgentRegistry.open(t.testdir(), { log: silentLog, watchIntervalMs: 0 });
  t.teardown(() => registry.close());
  const auth = createAuthenticator({ required: true, clientCert: 'accept' }, registry);
  t.same(auth({ agent: 'pi-1', token: 'x' }, plain), { ok: false, code: ErrorCode.AUTH_FAILED, message: 'agent pi-1 is not registered' });
  const token = await registry.add('pi-1');
  t.same(auth({ agent: 'pi-1', token }, plain), { ok: true, credential: { by: 'token', tokenHash: registry.get('pi-1')?.tokenHash } }, 'admitted by its token, whose hash the session keeps');
  await registry.revoke('pi-1');
  t.equal((auth({ agent: 'pi-1', token }, plain) as { code: string }).code, ErrorCode.AUTH_REVOKED);
});

t.test('auth - recheck: a session stands until the agent is revoked or, if opened with a token, its token is replaced', async (t) => {
  const registry = await AgentRegistry.open(t.testdir(), { log: silentLog, watchIntervalMs: 0 });
  t.teardown(() => registry.close());
  const config: AuthConfig = { required: true, clientCert: 'accept' };
  const token = await registry.add('pi-1');
  const byToken = authenticate({ agent: 'pi-1', token }, plain, config, registry);
  const byCert = authenticate({ agent: 'pi-1' }, certFor('pi-1'), config, registry);
  const certOnly = authenticate({ agent: 'cert-only' }, certFor('cert-only'), config, registry);
  const open = authenticate({ agent: 'pi-1' }, plain, { required: false, clientCert: 'off' }, registry);
  if (!byToken.ok || !byCert.ok || !certOnly.ok || !open.ok) throw new Error('all four are admitted');
  const code = (r: AuthResult): string => (r.ok ? 'ok' : r.code);
  t.equal(code(recheck('pi-1', byToken.credential, registry)), 'ok', 'nothing changed');

  await registry.issueToken('pi-1');
  t.equal(code(recheck('pi-1', byToken.credential, registry)), ErrorCode.AUTH_FAILED, 'a session opened with the old token is stale');
  t.match(recheck('pi-1', byToken.credential, registry), { message: /token this session was opened with was replaced/ });
  t.equal(code(recheck('pi-1', byCert.credential, registry)), 'ok', 'a certificate session used no token: it stands');
  t.equal(code(recheck('pi-1', open.credential, registry)), 'ok', 'a session with auth off stands');

  await registry.revoke('cert-only');
  t.equal(code(recheck('cert-only', certOnly.credential, registry)), ErrorCode.AUTH_REVOKED, 'a certificate-only agent revoked by ID');
  t.equal(code(authenticate({ agent: 'cert-only' }, certFor('cert-only'), config, registry)), ErrorCode.AUTH_REVOKED, 'and its certificate is refused from then on');
  await registry.revoke('pi-1');
  for (const [what, r] of [['token', byToken], ['certificate', byCert], ['auth off', open]] as const) {
    t.equal(code(recheck('pi-1', r.credential, registry)), ErrorCode.AUTH_REVOKED, `revoked: the ${what} session is stale`);
  }
});

/**
 * Who may open a session: decided once per HELLO from the agent ID, its token and what the
 * listener learned about the connection (a verified client certificate's subject CN).
 * No IO: the registry is read from memory. Messages never contain the token.
 */
import { ErrorCode } from '../protocol/errors.js';
import type { PeerInfo } from '../protocol/transport.js';
import type { AgentLookup } from './agents.js';

export interface AuthConfig {
  /** false: any agent ID that is not revoked is accepted */
  required: boolean;
  /** off: certificates are ignored; accept: a verified CN equal to the agent ID authenticates; require: a verified certificate is needed */
  clientCert: 'off' | 'accept' | 'require';
}

/**
 * How an admitted agent proved who it is. The session keeps it, so that when the registry changes
 * the gateway can tell whether the session still stands (`recheck`): one opened with a token that
 * has since been replaced must end, one opened with a certificate need not.
 */
export type Credential =
  | { by: 'token'; tokenHash: string }
  | { by: 'certificate' }
  /** auth not required: nothing was checked but that the agent is not revoked */
  | { by: 'none' };

export type AuthResult = { ok: true; credential: Credential } | { ok: false; code: ErrorCode; message: string };

/** What authentication reads from a HELLO. */
export interface HelloCredentials {
  agent: string;
  token?: string;
}

/** The function the session calls on HELLO: `deps.authenticate(hello, transport.peer)`. */
export type Authenticate = (hello: HelloCredentials, peer: PeerInfo | undefined) => AuthResult;

/**
 * The decision, in order:
 * 1. a revoked agent is refused (AUTH_REVOKED), whatever else holds, also when auth is not required;
 * 2. with certificates on, a verified certificate naming another agent is refused (AUTH_AGENT_MISMATCH),
 *    one naming this agent is enough (no token needed), and `require` refuses a connection without one;
 * 3. when auth is required: the agent must be registered and its token must match (AUTH_FAILED);
 * 4. otherwise any agent ID is accepted.
 */
export function authenticate(hello: HelloCredentials, peer: PeerInfo | undefined, config: AuthConfig, agents: AgentLookup): AuthResult {
  const { agent } = hello;
  const entry = agents.get(agent);
  if (entry?.revoked) return fail(ErrorCode.AUTH_REVOKED, `agent ${agent} is revoked`);
  if (config.clientCert !== 'off') {
    const cn = peer?.certSubject;
    if (cn !== undefined) {
      if (cn !== agent) return fail(ErrorCode.AUTH_AGENT_MISMATCH, `the client certificate is for agent ${JSON.stringify(cn)}, not ${agent}`);
      return { ok: true, credential: { by: 'certificate' } };
    }
    if (config.clientCert === 'require') return fail(ErrorCode.AUTH_FAILED, `agent ${agent}: this gateway needs a client certificate signed by its CA (tls.ca) over TLS`);
  }
  if (!config.required) return { ok: true, credential: { by: 'none' } };
  if (!entry) return fail(ErrorCode.AUTH_FAILED, `agent ${agent} is not registered`);
  if (hello.token === undefined || hello.token === '') return fail(ErrorCode.AUTH_FAILED, `agent ${agent} sent no token`);
  if (!agents.verifyToken(agent, hello.token) || entry.tokenHash === undefined) return fail(ErrorCode.AUTH_FAILED, `agent ${agent}: the token does not match`);
  return { ok: true, credential: { by: 'token', tokenHash: entry.tokenHash } };
}

/**
 * Whether a live session admitted with `credential` still stands after the registry changed:
 * a revoked agent is refused (AUTH_REVOKED) however it authenticated; a session opened with a
 * token is refused (AUTH_FAILED) once the agent's token is no longer that one (a new token, or
 * the entry removed). A certificate, or no check at all, stands as long as the agent is not revoked.
 */
export function recheck(agent: string, credential: Credential, agents: AgentLookup): AuthResult {
  const entry = agents.get(agent);
  if (entry?.revoked) return fail(ErrorCode.AUTH_REVOKED, `agent ${agent} was revoked`);
  if (credential.by === 'token' && entry?.tokenHash !== credential.tokenHash) {
    return fail(ErrorCode.AUTH_FAILED, `agent ${agent}: the token this session was opened with was replaced`);
  }
  return { ok: true, credential };
}

/** `authenticate` bound to a configuration and a registry: what goes into the session's deps. */
export function createAuthenticator(config: AuthConfig, agents: AgentLookup): Authenticate {
  return (hello, peer) => authenticate(hello, peer, config, agents);
}

function fail(code: ErrorCode, message: string): AuthResult {
  return { ok: false, code, message };
}

/**
 * Whether a gateway that authenticates nobody is safe to start, and what it says at start when it
 * does. With `auth.required: false` any client that can reach a listener can act as any agent
 * (deliver packets in its name, move its dispatch floor); that is acceptable only where the only
 * clients are on this host, so a non-loopback listener needs a second, explicit key.
 */
import { isLoopbackHost } from '../common/loopback.js';
import { splitHostPort } from '../common/host-port.js';

// Shared with the agent's metrics listener; kept exported here for the gateway's callers.
export { isLoopbackHost };

/** The part of the gateway configuration this module reads. */
export interface AuthPosture {
  listen: { tcp?: string | undefined; tls?: string | undefined; http?: string | undefined; https?: string | undefined };
  auth: { required: boolean; allowUnauthenticatedRemote: boolean };
}

/** The host of a `HOST:PORT` listen setting. */
export function hostOf(hostPort: string): string {
  return splitHostPort(hostPort).host;
}

type ListenKey = 'tcp' | 'tls' | 'http' | 'https';

/** The listeners (`listen.tcp`, `listen.tls`, `listen.http`, `listen.https`) bound to an address other hosts can reach. */
export function remoteListeners(c: Pick<AuthPosture, 'listen'>): { key: ListenKey; hostPort: string }[] {
  const out: { key: ListenKey; hostPort: string }[] = [];
  for (const key of ['tcp', 'tls', 'http', 'https'] as const) {
    const hostPort = c.listen[key];
    if (hostPort !== undefined && !isLoopbackHost(hostOf(hostPort))) out.push({ key, hostPort });
  }
  return out;
}

/** The configuration error, or null: auth off on a non-loopback listener without the explicit second key. */
export function unauthenticatedRemoteProblem(c: AuthPosture): string | null {
  if (c.auth.required || c.auth.allowUnauthenticatedRemote) return null;
  const remote = remoteListeners(c);
  if (remote.length === 0) return null;
  const where = remote.map((r) => `listen.${r.key} ${r.hostPort}`).join(', ');
  return `false on a listener other hosts can reach (${where}) would let any client act as any agent: ` +
    'set auth.required: true and register the agents (ferry gateway add-agent), bind to 127.0.0.1, ' +
    'or, knowing the risk, add auth.allowUnauthenticatedRemote: true';
}

/** The warning lines to log at start (level warn), with their fields; none when auth is on. */
export function authWarnings(c: AuthPosture): { msg: string; fields: Record<string, unknown> }[] {
  if (c.auth.required) return [];
  const remote = remoteListeners(c);
  const msg = remote.length > 0
    ? 'gateway: AUTHENTICATION IS OFF on a listener other hosts can reach (auth.required false, auth.allowUnauthenticatedRemote true): any client that reaches it can act as any agent, deliver packets in its name and change its dispatch state; see docs/security.md'
    : 'gateway: AUTHENTICATION IS OFF (auth.required false): any client on this host can act as any agent, deliver packets in its name and change its dispatch state; see docs/security.md';
  return [{ msg, fields: { authRequired: false, remoteListeners: remote.map((r) => `${r.key} ${r.hostPort}`) } }];
}

/**
 * The agent registry: which agent IDs may connect and the hash of each one's token, in
 * `DATADIR/agents.json`. The CLI (`ferry gateway add-agent` …) changes the file; a running gateway
 * polls it and picks the change up without a restart, so a revocation or a new token ends the
 * agent's live session. The file, its lock, its atomic replacement and its reloading are
 * gateway/registry-file.ts (shared with the application registry, gateway/apps.ts).
 */
import { timingSafeEqual } from 'node:crypto';
import type { Log } from '../common/log.js';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import { agentIdPattern as idsAgentIdPattern, agentIdRule } from '../protocol/ids.js';
import { hashToken, newToken, parseRegistry, RegistryFile, registryFileVersion, tokenHashPattern, type RegistryEntryBase } from './registry-file.js';

export { hashToken, newToken } from './registry-file.js';

/** `tokenHash` (`sha256:<64 hex>`, absent once revoked), `revoked`, `addedAt`/`revokedAt` (ms since the epoch) */
export interface AgentEntry extends RegistryEntryBase {
  id: string;
}

/** What authentication needs from the registry. */
export interface AgentLookup {
  get(id: string): AgentEntry | undefined;
  /** true when `token` hashes to the agent's stored hash (compared in constant time) */
  verifyToken(id: string, token: string): boolean;
}

export const agentsFileName = 'agents.json';
/** The lock changes hold (distinct from the data dir's `LOCK`, which a running gateway holds). */
export const agentsLockName = 'agents.lock';
/** The one definition of an agent ID (protocol/ids.ts). */
export const agentIdPattern = idsAgentIdPattern;

/** Parses the registry file's text; anything unexpected is CONFIG_INVALID naming the file and the entry. */
export function parseAgents(text: string, path: string): Map<string, AgentEntry> {
  return parseRegistry(text, path, {
    key: 'agents', nameKey: 'id', nameRule: 'an agent ID', namePattern: agentIdPattern,
    damaged: 'the agent registry is damaged and no command changes it until it is repaired: fix it by hand, restore it from a backup, or move it aside and register the agents again with `ferry gateway add-agent`',
    entry: (base, id) => ({ id, ...base }),
  });
}

export interface RegistryOptions {
  log?: Log;
  /**
   * called after a reload for each agent whose entry changed since the last load: revoked, a new
   * token, registered again or removed (the gateway checks its live session against the entry)
   */
  onChanged?: (id: string) => void;
  /** poll the file for changes made by the CLI; 0 turns polling off (default 500) */
  watchIntervalMs?: number;
  /** ms since the epoch, for addedAt/revokedAt (default Date.now) */
  now?: () => number;
  /** how long a change waits for another process's change to finish before DATA_DIR_LOCKED (default 10 s) */
  lockWaitMsMax?: number;
}

/** Whether what authentication reads from an entry differs. */
const sameCredentials = (a: AgentEntry | undefined, b: AgentEntry | undefined): boolean =>
  a?.revoked === b?.revoked && a?.tokenHash === b?.tokenHash && (a === undefined) === (b === undefined);

/**
 * The registry of one data directory. Reads are from memory; changes (`add`, `issueToken`,
 * `revoke`) go through RegistryFile.change (the lock, a fresh read, an atomic replacement), so the
 * CLI and a running gateway may both hold one and CLI commands run at once never lose each
 * other's changes.
 */
export class AgentRegistry implements AgentLookup {
  private constructor(private readonly file: RegistryFile<AgentEntry>, private readonly opts: RegistryOptions) {}

  get path(): string {
    return this.file.path;
  }

  /** Loads `DATADIR/agents.json` (none yet: an empty registry); a damaged file is CONFIG_INVALID. */
  static async open(dataDir: string, opts: RegistryOptions = {}): Promise<AgentRegistry> {
    let registry: AgentRegistry | undefined;
    const file = await RegistryFile.open<AgentEntry>({
      dataDir, fileName: agentsFileName, lockName: agentsLockName, what: 'agent registry',
      parse: parseAgents,
      serialize: (agents) => ({ version: registryFileVersion, agents: [...agents.values()] }),
      onReloaded: (before, next) => registry?.reloaded(before, next),
      ...(opts.log ? { log: opts.log } : {}),
      ...(opts.watchIntervalMs !== undefined ? { watchIntervalMs: opts.watchIntervalMs } : {}),
      ...(opts.lockWaitMsMax !== undefined ? { lockWaitMsMax: opts.lockWaitMsMax } : {}),
    });
    registry = new AgentRegistry(file, opts);
    return registry;
  }

  get(id: string): AgentEntry | undefined {
    const e = this.file.entries.get(id);
    return e && { ...e };
  }

  list(): AgentEntry[] {
    return [...this.file.entries.values()].map((e) => ({ ...e })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  verifyToken(id: string, token: string): boolean {
    const stored = this.file.entries.get(id)?.tokenHash;
    if (stored === undefined || !tokenHashPattern.test(stored)) return false;
    const a = Buffer.from(hashToken(token), 'latin1');
    const b = Buffer.from(stored, 'latin1');
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /**
   * Re-reads the file; calls `onChanged` for each agent whose entry changed. A damaged
   * file is logged and the registry keeps what it had (a half-edited file must not open the door
   * or crash the gateway).
   */
  reload(): Promise<void> {
    return this.file.reload();
  }

  private reloaded(before: ReadonlyMap<string, AgentEntry>, next: ReadonlyMap<string, AgentEntry>): void {
    const changed = [...new Set([...before.keys(), ...next.keys()])].filter((id) => !sameCredentials(before.get(id), next.get(id))).sort();
    if (changed.length === 0) return;
    const revoked = changed.filter((id) => next.get(id)?.revoked === true && before.get(id)?.revoked !== true);
    this.opts.log?.info('agents: registry reloaded', { agents: next.size, changed, revoked });
    for (const id of changed) this.opts.onChanged?.(id);
  }

  /** Registers `id` (or re-registers a revoked one) and returns its new token; an active agent is refused. */
  add(id: string): Promise<string> {
    return this.change(id, (agents, now) => {
      const e = agents.get(id);
      if (e && !e.revoked) throw new FerryError(ErrorCode.CONFIG_INVALID, `agent ${id} is already registered; \`ferry gateway issue-token\` gives it a new token`);
      const token = newToken();
      agents.set(id, { id, tokenHash: hashToken(token), revoked: false, addedAt: now });
      return token;
    });
  }

  /** Gives a registered, active agent a new token; the old one stops working. */
  issueToken(id: string): Promise<string> {
    return this.change(id, (agents) => {
      const e = agents.get(id);
      if (!e) throw new FerryError(ErrorCode.AGENT_UNKNOWN, `agent ${id} is not registered; \`ferry gateway add-agent\` registers it (\`list-agents\` lists those that are)`);
      if (e.revoked) throw new FerryError(ErrorCode.CONFIG_INVALID, `agent ${id} is revoked; \`ferry gateway add-agent\` registers it again`);
      const token = newToken();
      e.tokenHash = hashToken(token);
      return token;
    });
  }

  /**
   * Revokes `id`: its token is forgotten and its session ended. An ID that is not registered gets
   * a revoked entry all the same: an agent that authenticates by client certificate alone has no
   * entry, and must be revocable. Returns 'revoked', 'already' (it was), or 'unregistered'
   * (a new revoked entry: refused from now on, whatever its credentials). With `unregistered:
   * 'refuse'` (no client certificate can authenticate anyone, so an unknown ID is a typo) such
   * an ID is AGENT_UNKNOWN instead and nothing is written.
   */
  revoke(id: string, opts: { unregistered?: 'record' | 'refuse' } = {}): Promise<'revoked' | 'already' | 'unregistered'> {
    return this.change(id, (agents, now) => {
      const e = agents.get(id);
      if (!e && opts.unregistered === 'refuse') {
        throw new FerryError(ErrorCode.AGENT_UNKNOWN, `agent ${id} is not registered, and without tls.ca no unregistered agent can authenticate: nothing to revoke (\`ferry gateway list-agents\` lists the registered ones)`);
      }
      if (!e) {
        agents.set(id, { id, revoked: true, addedAt: now, revokedAt: now });
        return 'unregistered';
      }
      if (e.revoked) return 'already';
      e.revoked = true;
      e.revokedAt = now;
      delete e.tokenHash;
      return 'revoked';
    });
  }

  close(): void {
    this.file.close();
  }

  private change<T>(id: string, fn: (agents: Map<string, AgentEntry>, now: number) => T): Promise<T> {
    if (!agentIdPattern.test(id)) return Promise.reject(new FerryError(ErrorCode.CONFIG_INVALID, `agent ID must be ${agentIdRule}`));
    return this.file.change((agents) => fn(agents, (this.opts.now ?? Date.now)()));
  }
}

/**
 * The agent registry: which agent IDs may connect and the hash of each one's token, in
 * `DATADIR/agents.json`. The CLI (`ferry gateway add-agent` …) changes the file; a running gateway
 * polls it and picks the change up without a restart, so a revocation or a new token ends the
 * agent's live session.
 *
 * Changes hold the registry lock (`DATADIR/agents.lock`, common/os-lock.ts) from re-reading the
 * file to the rename of its replacement, so two commands run at once apply one after the other:
 * neither can write back a copy read before the other's change (which once undid revocations).
 * The running gateway only reads; the rename is atomic, so it sees the old file or the new one.
 *
 * Tokens are 32 random bytes, shown once and stored only as `sha256:<hex>`. A fast hash is the
 * right one here: a token carries 256 bits of randomness, so there is nothing for a slow hash to
 * protect against guessing, while scrypt or argon2 would cost tens of milliseconds of CPU per
 * HELLO, which a reconnect storm of thousands of agents turns into a self-inflicted outage.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { isTmpNameOf, uniqueTmpPath, writeFileAtomic } from '../common/durable-file.js';
import { osLockWaiting } from '../common/os-lock.js';
import { realFiles } from '../common/real-files.js';
import type { Log } from '../common/log.js';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import { agentIdPattern as idsAgentIdPattern, agentIdRule } from '../protocol/ids.js';

export interface AgentEntry {
  id: string;
  /** `sha256:<64 hex>`; absent once revoked */
  tokenHash?: string;
  revoked: boolean;
  /** ms since the epoch */
  addedAt: number;
  revokedAt?: number;
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
const hashPattern = /^sha256:[0-9a-f]{64}$/;
const fileVersion = 1;

export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

export function hashToken(token: string): string {
  return `sha256:${createHash('sha256').update(token, 'utf8').digest('hex')}`;
}

/** Parses the registry file's text; anything unexpected is CONFIG_INVALID naming the file and the entry. */
export function parseAgents(text: string, path: string): Map<string, AgentEntry> {
  const bad = (what: string): never => {
    throw new FerryError(ErrorCode.CONFIG_INVALID, `${path}: ${what} (the agent registry is damaged and no command changes it until it is repaired: fix it by hand, restore it from a backup, or move it aside and register the agents again with \`ferry gateway add-agent\`; a running gateway keeps the copy it last loaded)`);
  };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return bad(`not valid JSON: ${(err as Error).message}`);
  }
  const doc = value as { version?: unknown; agents?: unknown };
  if (typeof doc !== 'object' || doc === null || doc.version !== fileVersion || !Array.isArray(doc.agents)) {
    return bad(`expected {"version": ${fileVersion}, "agents": [...]}`);
  }
  const agents = new Map<string, AgentEntry>();
  for (const [i, raw] of (doc.agents as unknown[]).entries()) {
    const e = raw as Record<string, unknown>;
    if (typeof e !== 'object' || e === null) bad(`agents[${i}]: not an object`);
    if (typeof e.id !== 'string' || !agentIdPattern.test(e.id)) bad(`agents[${i}].id: an agent ID expected`);
    if (e.tokenHash !== undefined && (typeof e.tokenHash !== 'string' || !hashPattern.test(e.tokenHash))) bad(`agents[${i}].tokenHash: sha256:<64 hex digits> expected`);
    if (typeof e.revoked !== 'boolean') bad(`agents[${i}].revoked: true or false expected`);
    if (typeof e.addedAt !== 'number') bad(`agents[${i}].addedAt: a time in ms expected`);
    if (e.revokedAt !== undefined && typeof e.revokedAt !== 'number') bad(`agents[${i}].revokedAt: a time in ms expected`);
    const id = e.id as string;
    if (agents.has(id)) bad(`agents[${i}].id: ${id} is listed twice`);
    const entry: AgentEntry = { id, revoked: e.revoked as boolean, addedAt: e.addedAt as number };
    if (e.tokenHash !== undefined) entry.tokenHash = e.tokenHash as string;
    if (e.revokedAt !== undefined) entry.revokedAt = e.revokedAt as number;
    agents.set(id, entry);
  }
  return agents;
}

async function readAgents(path: string): Promise<Map<string, AgentEntry>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new FerryError(ErrorCode.CONFIG_INVALID, `${path}: cannot read the agent registry (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
  return parseAgents(text, path);
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
 * `revoke`) take the registry lock, read the file afresh, change it and replace it atomically
 * (a temporary file of their own, fsync, rename, fsync of the directory), so the CLI and a running
 * gateway may both hold one and CLI commands run at once never lose each other's changes.
 */
export class AgentRegistry implements AgentLookup {
  private agents = new Map<string, AgentEntry>();
  private watcher: ((cur: Stats, prev: Stats) => void) | null = null;
  private reloading: Promise<void> = Promise.resolve();

  private constructor(readonly path: string, private readonly opts: RegistryOptions) {}

  /** Loads `DATADIR/agents.json` (none yet: an empty registry); a damaged file is CONFIG_INVALID. */
  static async open(dataDir: string, opts: RegistryOptions = {}): Promise<AgentRegistry> {
    const r = new AgentRegistry(join(dataDir, agentsFileName), opts);
    r.agents = await readAgents(r.path);
    const intervalMs = opts.watchIntervalMs ?? 500;
    if (intervalMs > 0) {
      // fs.watchFile stats the path (a bounded cost: one stat per interval), so a rename over it is seen too.
      r.watcher = (cur, prev) => {
        if (cur.mtimeMs !== prev.mtimeMs || cur.ino !== prev.ino || cur.size !== prev.size) void r.reload();
      };
      watchFile(r.path, { interval: intervalMs, persistent: false }, r.watcher);
    }
    return r;
  }

  get(id: string): AgentEntry | undefined {
    const e = this.agents.get(id);
    return e && { ...e };
  }

  list(): AgentEntry[] {
    return [...this.agents.values()].map((e) => ({ ...e })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  verifyToken(id: string, token: string): boolean {
    const stored = this.agents.get(id)?.tokenHash;
    if (stored === undefined || !hashPattern.test(stored)) return false;
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
    this.reloading = this.reloading.then(async () => {
      let next: Map<string, AgentEntry>;
      try {
        next = await readAgents(this.path);
      } catch (err) {
        this.opts.log?.error('agents: registry not reloaded; keeping the previous one', { file: this.path, err });
        return;
      }
      const before = this.agents;
      this.agents = next;
      const changed = [...new Set([...before.keys(), ...next.keys()])].filter((id) => !sameCredentials(before.get(id), next.get(id))).sort();
      if (changed.length === 0) return;
      const revoked = changed.filter((id) => next.get(id)?.revoked === true && before.get(id)?.revoked !== true);
      this.opts.log?.info('agents: registry reloaded', { agents: next.size, changed, revoked });
      for (const id of changed) this.opts.onChanged?.(id);
    });
    return this.reloading;
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
      if (!e) throw new FerryError(ErrorCode.CONFIG_INVALID, `agent ${id} is not registered; \`ferry gateway add-agent\` registers it`);
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
   * (a new revoked entry: refused from now on, whatever its credentials).
   */
  revoke(id: string): Promise<'revoked' | 'already' | 'unregistered'> {
    return this.change(id, (agents, now) => {
      const e = agents.get(id);
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
    if (this.watcher) unwatchFile(this.path, this.watcher);
    this.watcher = null;
  }

  private async change<T>(id: string, fn: (agents: Map<string, AgentEntry>, now: number) => T): Promise<T> {
    if (!agentIdPattern.test(id)) throw new FerryError(ErrorCode.CONFIG_INVALID, `agent ID must be ${agentIdRule}`);
    const dir = dirname(this.path);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const lock = await this.lock(dir);
    let result: T;
    try {
      // Read under the lock: a copy read before another command's change would undo it when written back.
      const agents = await readAgents(this.path);
      result = fn(agents, (this.opts.now ?? Date.now)());
      await removeLeftovers(dir);
      const doc = { version: fileVersion, agents: [...agents.values()] };
      await writeFileAtomic(realFiles, this.path, `${JSON.stringify(doc, null, 2)}\n`, { tmpPath: uniqueTmpPath(this.path, randomBytes(6), process.pid) });
    } finally {
      await lock.release();
    }
    await this.reload();
    return result;
  }

  private async lock(dir: string): Promise<{ release(): Promise<void> }> {
    const waitMsMax = this.opts.lockWaitMsMax ?? 10_000;
    try {
      return await osLockWaiting(join(dir, agentsLockName), { waitMsMax });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
      throw new FerryError(ErrorCode.DATA_DIR_LOCKED, `the agent registry ${this.path} is being changed by another command, still after ${waitMsMax} ms (${(err as Error).message}); try again once it has finished, or stop it if it hangs`, { cause: err });
    }
  }
}

/**
 * Removes temporary files a change left when its process died between writing and renaming.
 * Called under the lock, so none of them belongs to a change still running.
 */
async function removeLeftovers(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    if (isTmpNameOf(agentsFileName, name)) await unlink(join(dir, name)).catch(() => undefined);
  }
}

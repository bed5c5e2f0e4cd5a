/**
 * The application registry: which applications may use the gateway's API (`listen.api`), the hash
 * of each one's token and the agents it may reach, in `DATADIR/apps.json`. `ferry gateway add-app`
 * changes the file (the same lock, atomic replacement and polling as the agent registry:
 * gateway/registry-file.ts); a running gateway picks a new or revoked application up within a
 * poll interval, without a restart.
 *
 * An API request carries only its token, so the registry finds the application by the token's
 * hash (a map lookup). That lookup is not constant-time, and need not be: what it could leak is
 * how much of the SHA-256 of a guess matches a stored hash, which does not help to find a token
 * whose hash matches (a preimage), and the tokens carry 256 random bits.
 */
import type { Log } from '../common/log.js';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import { agentIdPattern, agentIdRule } from '../protocol/ids.js';
import { hashToken, newToken, parseRegistry, RegistryFile, registryFileVersion, type RegistryEntryBase } from './registry-file.js';

/** `tokenHash` (`sha256:<64 hex>`, absent once revoked), `revoked`, `addedAt`/`revokedAt` (ms since the epoch) */
export interface AppEntry extends RegistryEntryBase {
  name: string;
  /** the agents it may reach; absent: every agent */
  agents?: string[];
}

/** What the API needs from the registry. */
export interface AppLookup {
  /** The active application whose token this is, or undefined. */
  byToken(token: string): AppEntry | undefined;
}

export const appsFileName = 'apps.json';
export const appsLockName = 'apps.lock';
/** An application's name follows the agent ID rule (protocol/ids.ts): it names the app in logs and in `from`. */
export const appNamePattern = agentIdPattern;
export const appNameRule = agentIdRule;

/** Whether `app` may reach `agent`. */
export function appMayReach(app: Pick<AppEntry, 'agents'>, agent: string): boolean {
  return app.agents === undefined || app.agents.includes(agent);
}

/** Parses the registry file's text; anything unexpected is CONFIG_INVALID naming the file and the entry. */
export function parseApps(text: string, path: string): Map<string, AppEntry> {
  return parseRegistry(text, path, {
    key: 'apps', nameKey: 'name', nameRule: `an application name (${appNameRule})`, namePattern: appNamePattern,
    damaged: 'the application registry is damaged and no command changes it until it is repaired: fix it by hand, restore it from a backup, or move it aside and add the applications again with `ferry gateway add-app`',
    entry: (base, name, raw, bad) => {
      const { agents } = raw;
      if (agents !== undefined && (!Array.isArray(agents) || agents.some((a) => typeof a !== 'string' || !agentIdPattern.test(a)))) bad('agents: a list of agent IDs expected');
      return { name, ...base, ...(agents !== undefined ? { agents: [...(agents as string[])] } : {}) };
    },
  });
}

export interface AppRegistryOptions {
  log?: Log;
  /** poll the file for changes made by the CLI; 0 turns polling off (default 500) */
  watchIntervalMs?: number;
  /** ms since the epoch, for addedAt/revokedAt (default Date.now) */
  now?: () => number;
  /** how long a change waits for another process's change to finish before DATA_DIR_LOCKED (default 10 s) */
  lockWaitMsMax?: number;
}

const copy = (e: AppEntry): AppEntry => ({ ...e, ...(e.agents ? { agents: [...e.agents] } : {}) });

export class AppRegistry implements AppLookup {
  /** token hash → name of the active application holding it; rebuilt on every reload */
  private byHash = new Map<string, string>();

  private constructor(private readonly file: RegistryFile<AppEntry>, private readonly opts: AppRegistryOptions) {}

  get path(): string {
    return this.file.path;
  }

  /** Loads `DATADIR/apps.json` (none yet: no application may use the API); a damaged file is CONFIG_INVALID. */
  static async open(dataDir: string, opts: AppRegistryOptions = {}): Promise<AppRegistry> {
    let registry: AppRegistry | undefined;
    const file = await RegistryFile.open<AppEntry>({
      dataDir, fileName: appsFileName, lockName: appsLockName, what: 'application registry',
      parse: parseApps,
      serialize: (apps) => ({ version: registryFileVersion, apps: [...apps.values()] }),
      onReloaded: (before, next) => registry?.reloaded(before, next),
      ...(opts.log ? { log: opts.log } : {}),
      ...(opts.watchIntervalMs !== undefined ? { watchIntervalMs: opts.watchIntervalMs } : {}),
      ...(opts.lockWaitMsMax !== undefined ? { lockWaitMsMax: opts.lockWaitMsMax } : {}),
    });
    registry = new AppRegistry(file, opts);
    registry.index(file.entries);
    return registry;
  }

  get(name: string): AppEntry | undefined {
    const e = this.file.entries.get(name);
    return e && copy(e);
  }

  list(): AppEntry[] {
    return [...this.file.entries.values()].map(copy).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  byToken(token: string): AppEntry | undefined {
    if (token.length === 0) return undefined;
    const name = this.byHash.get(hashToken(token));
    const e = name === undefined ? undefined : this.file.entries.get(name);
    return e && !e.revoked ? copy(e) : undefined;
  }

  reload(): Promise<void> {
    return this.file.reload();
  }

  /**
   * Adds application `name` (or adds a revoked one again) and returns its new token; an active
   * one is refused. `agents`: the agents it may reach (each an agent ID); absent: every agent.
   */
  add(name: string, agents?: readonly string[]): Promise<string> {
    if (agents !== undefined) {
      const bad = agents.find((a) => !agentIdPattern.test(a));
      if (bad !== undefined) return Promise.reject(new FerryError(ErrorCode.CONFIG_INVALID, `--agents: '${bad}' is not an agent ID (${agentIdRule})`));
      if (agents.length === 0) return Promise.reject(new FerryError(ErrorCode.CONFIG_INVALID, '--agents: name at least one agent (without --agents the application may reach every agent)'));
    }
    return this.change(name, (apps, now) => {
      const e = apps.get(name);
      if (e && !e.revoked) throw new FerryError(ErrorCode.CONFIG_INVALID, `application ${name} is already added; \`ferry gateway revoke-app\` it first to give it a new token`);
      const token = newToken();
      apps.set(name, { name, tokenHash: hashToken(token), revoked: false, ...(agents !== undefined ? { agents: [...new Set(agents)].sort() } : {}), addedAt: now });
      return token;
    });
  }

  /** Revokes `name`: its token is forgotten; a running gateway refuses it (401) from its next reload on. */
  revoke(name: string): Promise<'revoked' | 'already'> {
    return this.change(name, (apps, now) => {
      const e = apps.get(name);
      if (!e) throw new FerryError(ErrorCode.APP_UNKNOWN, `application ${name} is not added; \`ferry gateway apps\` lists the applications`);
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

  private reloaded(before: ReadonlyMap<string, AppEntry>, next: ReadonlyMap<string, AppEntry>): void {
    this.index(next);
    const changed = [...new Set([...before.keys(), ...next.keys()])]
      .filter((n) => JSON.stringify(before.get(n)) !== JSON.stringify(next.get(n))).sort();
    if (changed.length > 0) this.opts.log?.info('apps: registry reloaded', { apps: next.size, changed });
  }

  private index(entries: ReadonlyMap<string, AppEntry>): void {
    const byHash = new Map<string, string>();
    for (const e of entries.values()) if (!e.revoked && e.tokenHash !== undefined) byHash.set(e.tokenHash, e.name);
    this.byHash = byHash;
  }

  private change<T>(name: string, fn: (apps: Map<string, AppEntry>, now: number) => T): Promise<T> {
    if (!appNamePattern.test(name)) return Promise.reject(new FerryError(ErrorCode.CONFIG_INVALID, `an application name must be ${appNameRule}`));
    return this.file.change((apps) => fn(apps, (this.opts.now ?? Date.now)()));
  }
}

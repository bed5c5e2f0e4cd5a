/**
 * SIGHUP: the gateway reads its configuration again and applies what can change while sessions
 * go on: the routes (new handlers made first; a failure refuses the whole reload), the agent
 * registry and the application registry. Every other key needs a restart: a change to one is
 * named in a warning and ignored. Anything invalid leaves the running configuration as it was.
 */
import type { Log } from '../common/log.js';
import { isFerryError } from '../protocol/errors.js';
import type { GatewayConfig } from './config.js';
import type { Handler } from './handlers/handler.js';

/** What a reload touches; gateway/main.ts wires it. */
export interface ReloadDeps {
  log: Log;
  /** reads and validates the file again (throws CONFIG_INVALID naming the file and field) */
  load(): GatewayConfig;
  /** makes every route's handler, or throws (having closed those it made) */
  openHandlers(routes: GatewayConfig['routes']): Promise<Handler[]>;
  /** hands new packets to these routes (made from `config`); the old handlers close once idle */
  replaceRoutes(routes: { match: string; handler: Handler }[], config: GatewayConfig['routes']): void;
  /** re-reads the agent registry and the application registry (sessions a change made stale end) */
  reloadRegistries(): Promise<void>;
}

export type ReloadOutcome =
  | { ok: true; config: GatewayConfig; needsRestart: string[] }
  | { ok: false; code: string; error: string };

/** Top-level keys other than `routes` whose value differs: they only take effect after a restart. */
export function keysNeedingRestart(running: GatewayConfig, next: GatewayConfig): string[] {
  const keys = new Set([...Object.keys(running), ...Object.keys(next)]);
  keys.delete('routes');
  const a = running as Record<string, unknown>;
  const b = next as Record<string, unknown>;
  return [...keys].filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k])).sort();
}

/** Applies the configuration file to a running gateway whose configuration is `running`. */
export async function reloadGateway(running: GatewayConfig, deps: ReloadDeps): Promise<ReloadOutcome> {
  const { log } = deps;
  const refuse = (err: unknown): ReloadOutcome => {
    const code = isFerryError(err) ? err.code : ((err as { code?: string })?.code ?? 'INTERNAL');
    const error = (err as Error)?.message ?? String(err);
    log.error('gateway: reload refused; the running configuration stays', { code, error });
    return { ok: false, code, error };
  };
  let next: GatewayConfig;
  let handlers: Handler[];
  try {
    next = deps.load();
    handlers = await deps.openHandlers(next.routes);
  } catch (err) {
    return refuse(err);
  }
  const needsRestart = keysNeedingRestart(running, next);
  if (needsRestart.length > 0) log.warn('gateway: reload: these keys changed and need a restart; ignored until then', { keys: needsRestart });
  deps.replaceRoutes(next.routes.map((r, i) => ({ match: r.match, handler: handlers[i]! })), next.routes);
  try {
    await deps.reloadRegistries();
  } catch (err) {
    // The routes are in force already; a registry that cannot be read keeps its last good state.
    log.error('gateway: reload: a registry could not be read again; its previous state stays', { error: (err as Error)?.message ?? String(err) });
  }
  log.info('gateway: reloaded', { routes: next.routes.map((r) => `${r.match} -> ${r.handler}`), needsRestart });
  // Only the routes changed; the rest stays as it runs.
  return { ok: true, config: { ...running, routes: next.routes }, needsRestart };
}

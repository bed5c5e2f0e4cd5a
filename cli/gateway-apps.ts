/** `ferry gateway add-app | revoke-app | apps`: the application registry (API tokens) from the command line. */
import { parseArgs } from 'node:util';
import { appNamePattern, appNameRule, AppRegistry, type AppEntry } from '../gateway/apps.js';
import { gatewayConfigSchema } from '../gateway/config.js';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import { loadConfig } from './load-config.js';

export const appSubcommands = ['add-app', 'revoke-app', 'apps'] as const;
export type AppSubcommand = (typeof appSubcommands)[number];

export function isAppSubcommand(s: string | undefined): s is AppSubcommand {
  return (appSubcommands as readonly string[]).includes(s ?? '');
}

export const appSubcommandsHelp = `       ferry gateway add-app NAME [--agents A,B,...] --config FILE
       ferry gateway revoke-app NAME --config FILE
       ferry gateway apps --config FILE

  add-app           adds application NAME to DATADIR/apps.json and prints its API token (once:
                    only a hash is stored); the token goes in the Authorization: Bearer header of
                    requests to listen.api (docs/downlink.md); adds a revoked application again
  --agents A,B,...  the agents the application may reach (queue for, read the messages of);
                    without it, every agent
  revoke-app        revokes application NAME: its token stops working (401)
  apps              one line per application: name, active or revoked, its agents, when added
  A running gateway notices these changes within a second; no restart.
`;

const iso = (ms: number | undefined): string => (ms === undefined ? '-' : new Date(ms).toISOString());

function line(e: AppEntry): string {
  return [
    e.name, e.revoked ? 'revoked' : 'active', `agents ${e.agents === undefined ? '*' : e.agents.join(',')}`,
    `added ${iso(e.addedAt)}`, ...(e.revoked ? [`revoked ${iso(e.revokedAt)}`] : []),
  ].join('  ');
}

export async function runAppSubcommand(sub: AppSubcommand, args: string[]): Promise<number> {
  let f: { config?: string | undefined; 'data-dir'?: string | undefined; agents?: string | undefined };
  let names: string[];
  try {
    const parsed = parseArgs({ args, options: { config: { type: 'string' }, 'data-dir': { type: 'string' }, agents: { type: 'string' } }, strict: true, allowPositionals: true });
    f = parsed.values;
    names = parsed.positionals;
  } catch (err) {
    throw new FerryError(ErrorCode.CONFIG_INVALID, `gateway ${sub}: ${(err as Error).message}`);
  }
  if (f.config === undefined && f['data-dir'] === undefined) throw new FerryError(ErrorCode.CONFIG_INVALID, `gateway ${sub}: --config FILE is required (the registry lives in its dataDir)`);
  const needsName = sub !== 'apps';
  if (needsName && names.length !== 1) throw new FerryError(ErrorCode.CONFIG_INVALID, `gateway ${sub}: give the application's NAME (one)`);
  if (!needsName && names.length > 0) throw new FerryError(ErrorCode.CONFIG_INVALID, `gateway ${sub}: takes no NAME`);
  if (sub !== 'add-app' && f.agents !== undefined) throw new FerryError(ErrorCode.CONFIG_INVALID, `gateway ${sub}: takes no --agents`);
  const name = names[0]!;
  if (needsName && !appNamePattern.test(name)) throw new FerryError(ErrorCode.CONFIG_INVALID, `'${name}' is not an application name (${appNameRule})`);
  const dataDir = f['data-dir'] ?? loadConfig(f.config, gatewayConfigSchema, []).dataDir;
  const registry = await AppRegistry.open(dataDir, { watchIntervalMs: 0 });
  switch (sub) {
    case 'add-app': {
      const agents = f.agents === undefined ? undefined : f.agents.split(',').map((a) => a.trim()).filter((a) => a !== '');
      const token = await registry.add(name, agents);
      const reach = agents === undefined ? 'every agent' : `agents ${[...new Set(agents)].sort().join(', ')}`;
      process.stderr.write(`ferry: application ${name} added in ${registry.path} (it may reach ${reach}); its API token follows, shown this once\n`);
      process.stdout.write(`${token}\n`);
      return 0;
    }
    case 'revoke-app': {
      const outcome = await registry.revoke(name);
      process.stdout.write(outcome === 'already' ? `application ${name} was already revoked\n` : `application ${name} revoked\n`);
      return 0;
    }
    case 'apps':
      for (const e of registry.list()) process.stdout.write(`${line(e)}\n`);
      return 0;
  }
}

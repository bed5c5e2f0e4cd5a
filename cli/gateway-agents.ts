/** `ferry gateway add-agent | issue-token | revoke-agent | list-agents`: the agent registry from the command line. */
import { parseArgs } from 'node:util';
import { AgentRegistry, agentIdPattern, type AgentEntry } from '../gateway/agents.js';
import { gatewayConfigSchema } from '../gateway/config.js';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import { agentIdRule } from '../protocol/ids.js';
import { loadConfig } from './load-config.js';

export const agentSubcommands = ['add-agent', 'issue-token', 'revoke-agent', 'list-agents'] as const;
export type AgentSubcommand = (typeof agentSubcommands)[number];

export function isAgentSubcommand(s: string | undefined): s is AgentSubcommand {
  return (agentSubcommands as readonly string[]).includes(s ?? '');
}

export const agentSubcommandsHelp = `       ferry gateway add-agent --config FILE --agent ID
       ferry gateway issue-token --config FILE --agent ID
       ferry gateway revoke-agent --config FILE --agent ID   (or the ID as the one argument)
       ferry gateway list-agents --config FILE

  add-agent         registers agent ID in DATADIR/agents.json and prints its new token (once:
                    only a hash is stored); also re-registers a revoked agent
  issue-token       prints a new token for a registered agent; the old token stops working and
                    a running gateway ends a session opened with it (within a second)
  revoke-agent      revokes agent ID: its token is forgotten and a running gateway ends its
                    session (within a second) and refuses it from then on with AUTH_REVOKED,
                    its client certificate too; an ID that is not registered is recorded as
                    revoked when the gateway accepts client certificates (tls.ca), else it is
                    refused with AGENT_UNKNOWN (exit 1)
  list-agents       one line per agent: ID, active or revoked, when added and revoked (no hashes)
  --agent ID        the agent's ID (its \`id\` setting)
                    (--data-dir DIR works here too: the registry is DIR/agents.json)
  A running gateway notices these changes within a second; no restart. Commands run at once
  take turns (each waits up to 10 s for the one before). See docs/security.md.
`;

const iso = (ms: number | undefined): string => (ms === undefined ? '-' : new Date(ms).toISOString());

function line(e: AgentEntry): string {
  return [e.id, e.revoked ? 'revoked' : 'active', `added ${iso(e.addedAt)}`, ...(e.revoked ? [`revoked ${iso(e.revokedAt)}`] : [])].join('  ');
}

export async function runAgentSubcommand(sub: AgentSubcommand, args: string[]): Promise<number> {
  let f: { config?: string | undefined; 'data-dir'?: string | undefined; agent?: string | undefined };
  try {
    const parsed = parseArgs({ args, options: { config: { type: 'string' }, 'data-dir': { type: 'string' }, agent: { type: 'string' } }, strict: true, allowPositionals: true });
    f = parsed.values;
    // The ID may also come as the one positional (`revoke-agent pi-7`), as application names do.
    if (parsed.positionals.length > 1 || (parsed.positionals.length === 1 && f.agent !== undefined)) throw new Error('give the agent ID once: --agent ID or as the one argument');
    if (parsed.positionals.length === 1) f.agent = parsed.positionals[0];
  } catch (err) {
    throw new FerryError(ErrorCode.CONFIG_INVALID, `gateway ${sub}: ${(err as Error).message}`);
  }
  if (f.config === undefined && f['data-dir'] === undefined) throw new FerryError(ErrorCode.CONFIG_INVALID, `gateway ${sub}: --config FILE is required (the registry lives in its dataDir)`);
  const config = f.config !== undefined ? loadConfig(f.config, gatewayConfigSchema, []) : undefined;
  const dataDir = f['data-dir'] ?? config!.dataDir;
  const needsAgent = sub !== 'list-agents';
  if (needsAgent && f.agent === undefined) throw new FerryError(ErrorCode.CONFIG_INVALID, `gateway ${sub}: --agent ID is required`);
  if (!needsAgent && f.agent !== undefined) throw new FerryError(ErrorCode.CONFIG_INVALID, `gateway ${sub}: takes no --agent`);
  if (f.agent !== undefined && !agentIdPattern.test(f.agent)) throw new FerryError(ErrorCode.CONFIG_INVALID, `--agent: '${f.agent}' is not an agent ID (${agentIdRule})`);
  const registry = await AgentRegistry.open(dataDir, { watchIntervalMs: 0 });
  const agent = f.agent!;
  switch (sub) {
    case 'add-agent': {
      const token = await registry.add(agent);
      process.stderr.write(`ferry: agent ${agent} registered in ${registry.path}; its token follows, shown this once (put it in the agent's \`token\` setting)\n`);
      process.stdout.write(`${token}\n`);
      return 0;
    }
    case 'issue-token': {
      const token = await registry.issueToken(agent);
      process.stderr.write(`ferry: new token for agent ${agent}, shown this once; the old token no longer works\n`);
      process.stdout.write(`${token}\n`);
      return 0;
    }
    case 'revoke-agent': {
      // Only a client certificate lets an unregistered agent in: without one possible, an unknown ID is a mistake.
      const certificates = config === undefined || (config.tls?.ca !== undefined && config.auth.clientCert !== 'off');
      const outcome = await registry.revoke(agent, { unregistered: certificates ? 'record' : 'refuse' });
      if (outcome === 'unregistered') {
        process.stderr.write(`ferry: agent ${agent} was not registered; it is recorded as revoked, so a client certificate for it is refused from now on (\`ferry gateway add-agent\` registers it again)\n`);
      }
      process.stdout.write(outcome === 'already' ? `agent ${agent} was already revoked\n` : `agent ${agent} revoked\n`);
      return 0;
    }
    case 'list-agents':
      for (const e of registry.list()) process.stdout.write(`${line(e)}\n`);
      return 0;
  }
}

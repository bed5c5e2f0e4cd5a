/** Helpers for tests of the gateway's admin endpoint (listen.admin): its URL, its JSON, a second agent on a rig's gateway. */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FerryProcess } from '../../cli/proc.js';
import { AgentRegistry } from '../../gateway/agents.js';
import type { GatewayStatus } from '../../gateway/admin/status.js';
import { makeRig, waitFor, type Rig } from './ferry.js';

/** The admin URL a started gateway printed ("ferry gateway admin listening on http://HOST:PORT"). */
export function adminUrlOf(gw: FerryProcess): Promise<string> {
  return waitFor('the admin line', async () => /ferry gateway admin listening on (http:\/\/\S+)/.exec(gw.output())?.[1], 10_000);
}

export async function getStatus(url: string): Promise<GatewayStatus> {
  const r = await fetch(`${url}/status`);
  if (r.status !== 200) throw new Error(`GET /status: ${r.status}`);
  return (await r.json()) as GatewayStatus;
}

/**
 * A second rig whose agent (and simulator) talk to `first`'s gateway: the agent is registered in
 * that gateway's registry, with the token put in the second rig's agent.yaml.
 */
export async function secondAgent(first: Rig, agentId: string): Promise<Rig> {
  const rig = await makeRig({ agentId, port: first.port, rateHz: 50 });
  const registry = await AgentRegistry.open(join(first.dir, 'gw'), { watchIntervalMs: 0 });
  const token = await registry.add(agentId);
  registry.close();
  const yaml = join(rig.dir, 'agent.yaml');
  await writeFile(yaml, (await readFile(yaml, 'utf8')).replace(/^token: .*$/m, `token: ${JSON.stringify(token)}`));
  return rig;
}

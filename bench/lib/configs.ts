/** Temporary directories and the ferry agent configuration the benchmarks run with (the gateway's: lib/ferry-rig.ts). */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.js';

export async function tempDir(prefix: string, cleanup: Cleanup): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanup.defer(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
  return dir;
}

export const agentId = 'bench-agent';

/**
 * An agent with no sources (packets come over its local socket), every append fdatasync'ed.
 * `yaml`: further top-level lines (e.g. a `downlink:` block).
 * `gateway`: its one gateway URL, tcp://HOST:PORT (the TCP tunnel) or http://HOST:PORT (long-poll only).
 */
export async function writeAgentConfig(dir: string, opts: { gateway: string; socket: string; yaml?: string[] }): Promise<string> {
  const file = join(dir, 'agent.yaml');
  await writeFile(file, [
    `id: ${agentId}`, `gateway: ${opts.gateway}`, `dataDir: ${join(dir, 'agent')}`, `socket: ${opts.socket}`,
    'store:', '  sync: always', ...(opts.yaml ?? []), '',
  ].join('\n'));
  return file;
}

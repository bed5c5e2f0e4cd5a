/** Temporary directories and the ferry configuration files the benchmarks run with. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.js';

export async function tempDir(prefix: string, cleanup: Cleanup): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanup.defer(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A gateway on a free port whose only route sends every target to a durable file handler. */
export async function writeGatewayConfig(dir: string, outFile: string): Promise<string> {
  const file = join(dir, 'gateway.yaml');
  await writeFile(file, [
    'listen:', '  tcp: 127.0.0.1:0', `dataDir: ${join(dir, 'gateway')}`,
    // Loopback only, and the measurements predate authentication by default: kept off, as before.
    'auth:', '  required: false',
    'routes:', '  - match: "#"', '    handler: file', `    path: ${outFile}`, '    sync: always', '',
  ].join('\n'));
  return file;
}

export const agentId = 'bench-agent';

/** An agent with no sources (packets come over its local socket), every append fdatasync'ed. */
export async function writeAgentConfig(dir: string, opts: { gatewayPort: number; socket: string }): Promise<string> {
  const file = join(dir, 'agent.yaml');
  await writeFile(file, [
    `id: ${agentId}`, `gateway: tcp://127.0.0.1:${opts.gatewayPort}`, `dataDir: ${join(dir, 'agent')}`, `socket: ${opts.socket}`,
    'store:', '  sync: always', '',
  ].join('\n'));
  return file;
}

/**
 * A real `ferry gateway` over TLS with authentication required, and real agents dialling it: one
 * registered with a token (`pi-token`, added by the CLI) and any number with client certificates
 * (dist/cli/ferry.js: run `npx tsc -p .` first). Everything is stopped and removed at teardown.
 */
import type t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerry, stopProcess, type FerryProcess } from '../../cli/proc.js';
import { runFerry } from './cli-run.js';
import { makeCerts, type TestCerts } from './certs.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

export interface TlsFleet {
  dir: string;
  certs: TestCerts;
  gatewayYaml: string;
  /** the file handler's output */
  received: string;
  gw: FerryProcess;
  /** the token `add-agent` printed for `pi-token` */
  token: string;
  /** starts an agent `id` dialling the gateway, with more YAML lines (token, tls) */
  agent(id: string, extra: string[]): Promise<{ proc: FerryProcess; socket: string }>;
}

export async function startTlsFleet(t: Test, authYaml: string): Promise<TlsFleet> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-tls-'));
  const procs: FerryProcess[] = [];
  t.teardown(async () => {
    await Promise.all(procs.map((p) => stopProcess(p, 2000)));
    await rm(dir, { recursive: true, force: true });
  });
  const certs = makeCerts(join(dir, 'certs'));
  const received = join(dir, 'received.jsonl');
  const gatewayYaml = join(dir, 'gateway.yaml');
  await writeFile(gatewayYaml, [
    'listen: { tls: 127.0.0.1:0, admin: 127.0.0.1:0 }',
    `tls: { cert: ${certs.main.gateway.cert}, key: ${certs.main.gateway.key}, ca: ${certs.main.ca} }`,
    authYaml,
    `dataDir: ${join(dir, 'gw')}`,
    'routes:', `  - { match: "#", handler: file, path: ${received} }`, '',
  ].join('\n'));
  const added = await runFerry(['gateway', 'add-agent', '--config', gatewayYaml, '--agent', 'pi-token']);
  if (added.code !== 0) throw new Error(`add-agent failed: ${added.stderr}`);
  const token = added.stdout.trim();

  const gw = startFerry(['gateway', '--config', gatewayYaml], { readyPattern: /ferry gateway listening on tls:\/\/127\.0\.0\.1:(\d+)/, logFile: join(dir, 'gateway.log') });
  procs.push(gw);
  const port = Number((await gw.ready)[1]);
  const agent = async (id: string, extra: string[]): Promise<{ proc: FerryProcess; socket: string }> => {
    const socket = join(dir, `${id}.sock`);
    const yaml = join(dir, `${id}.yaml`);
    await writeFile(yaml, [`id: ${id}`, `gateway: tls://localhost:${port}`, `dataDir: ${join(dir, id)}`, `socket: ${socket}`,
      'link: { reconnectDelayMsMin: 50, reconnectDelayMsMax: 300 }', ...extra, ''].join('\n'));
    const proc = startFerry(['agent', '--config', yaml], { readyPattern: /ferry agent running/, logFile: join(dir, `${id}.log`) });
    procs.push(proc);
    await proc.ready;
    return { proc, socket };
  };
  return { dir, certs, gatewayYaml, received, gw, token, agent };
}

/** Integration-test harness: writes configs, starts real `ferry` processes, reads what they produced. */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localRequest } from '../../agent/local-api.js';
import type { AgentStats } from '../../agent/main.js';
import { startFerry, stopProcess, type FerryProcess } from '../../cli/proc.js';
import { AgentRegistry } from '../../gateway/agents.js';
import { freePort } from './free-port.js';

export interface Rig {
  dir: string;
  port: number;
  /** the gateway's long-poll ports (`listen.http`, `listen.https`), when the rig was made with `http`, `https` */
  httpPort: number | null;
  httpsPort: number | null;
  /** the gateway's application API port (`listen.api`), when the rig was made with `api` */
  apiPort: number | null;
  device: string;
  socket: string;
  received: string;
  /** the agent's token, registered in the gateway's registry (`gw/agents.json`) and in agent.yaml */
  token: string;
  start(name: 'gateway' | 'agent' | 'sim'): Promise<FerryProcess>;
  agentStats(): Promise<AgentStats | null>;
  /** The lines the file handler wrote, parsed. */
  lines(): Promise<{ agent: string; seq: number; target: string; ts: number; data: unknown }[]>;
  cleanup(): Promise<void>;
}

export interface RigOptions {
  agentId?: string;
  rateHz?: number;
  /** extra YAML lines appended to the agent config under `rules:` */
  rules?: string[];
  /** gateway routes YAML (default: everything to the file handler); `{received}` stands for the rig's file */
  routes?: string;
  /** more top-level YAML for the gateway config (e.g. `limits:`) */
  gatewayYaml?: string;
  /** keys for the agent's `link:` map, over the rig's defaults (fast reconnects) */
  agentLink?: Record<string, number>;
  /** the gateway's port (default: a free one) */
  port?: number;
  /** the port the agent dials (default: the gateway's; e.g. a fault proxy's) */
  agentPort?: number;
  /** false: the agent reads no serial device (packets come from the local API only) */
  serial?: boolean;
  /** more top-level YAML for the agent config (e.g. `store:`) */
  agentYaml?: string;
  /** the gateway also serves HTTP long-poll (`listen.http`) on this port (true: a free one) */
  http?: number | true;
  /** the gateway also serves HTTPS long-poll (`listen.https`; give `tls:` in gatewayYaml) on this port (true: a free one) */
  https?: number | true;
  /** the agent's `gateway` value as YAML (default: tcp:// to agentPort); `{tcp}`, `{http}`, `{https}` stand for the gateway's ports */
  agentGateway?: string;
  /** the agent process's environment (default: the test's), e.g. with HTTPS_PROXY */
  agentEnv?: NodeJS.ProcessEnv;
  /** runs every process through this command (startFerry's `wrap`), e.g. inside a network namespace */
  wrap?: readonly string[];
  /** the gateway also serves the application API (`listen.api`) on this port (true: a free one) */
  api?: number | true;
}

export async function makeRig(opts: RigOptions = {}): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-it-'));
  const port = opts.port ?? (await freePort());
  const device = join(dir, 'tty', 'ttyS0');
  const socket = join(dir, 'agent.sock');
  const received = join(dir, 'received.jsonl');
  const routes = (opts.routes ?? `  - match: "#"\n    handler: file\n    path: {received}\n`).replaceAll('{received}', received);
  const portOf = async (o: number | true | undefined): Promise<number | null> => (o === undefined ? null : o === true ? await freePort() : o);
  const httpPort = await portOf(opts.http);
  const httpsPort = await portOf(opts.https);
  const apiPort = await portOf(opts.api);
  const listen = `listen:\n  tcp: 127.0.0.1:${port}\n  admin: 127.0.0.1:0\n${httpPort !== null ? `  http: 127.0.0.1:${httpPort}\n` : ''}${httpsPort !== null ? `  https: 127.0.0.1:${httpsPort}\n` : ''}${apiPort !== null ? `  api: 127.0.0.1:${apiPort}\n` : ''}`;
  await writeFile(join(dir, 'gateway.yaml'), `${listen}dataDir: ${join(dir, 'gw')}\nroutes:\n${routes}${opts.gatewayYaml ?? ''}`);
  // The gateway requires authentication by default: register the agent, as `ferry gateway add-agent` does.
  const agentId = opts.agentId ?? 'it-agent';
  const registry = await AgentRegistry.open(join(dir, 'gw'), { watchIntervalMs: 0 });
  const token = await registry.add(agentId);
  registry.close();
  await writeFile(join(dir, 'sim.yaml'), `link: ${device}\nrateHz: ${opts.rateHz ?? 100}\nwaveform:\n  periodMs: 2000\n  noise: 0.3\n`);
  const rules = opts.rules ?? [
    '  - { kind: threshold, key: t, above: 22, hysteresis: 0.5, target: alerts/temp }',
    '  - { kind: delta, key: t, delta: 0.2, target: telemetry/temp }',
    '  - { kind: heartbeat, everyMs: 500, target: status/heartbeat }',
  ];
  await writeFile(join(dir, 'agent.yaml'), [
    `id: ${agentId}`, `token: ${JSON.stringify(token)}`,
    `gateway: ${(opts.agentGateway ?? 'tcp://127.0.0.1:{tcp}').replaceAll('{tcp}', String(opts.agentPort ?? port)).replaceAll('{http}', String(httpPort)).replaceAll('{https}', String(httpsPort))}`, `dataDir: ${join(dir, 'agent')}`, `socket: ${socket}`,
    `link: ${JSON.stringify({ reconnectDelayMsMin: 50, reconnectDelayMsMax: 500, ...opts.agentLink })}`,
    ...(opts.serial === false ? [] : ['sources:', `  - { kind: serial, name: sensor, path: ${device}, reopenDelayMs: 100 }`, 'rules:', ...rules]), opts.agentYaml ?? '', '',
  ].join('\n'));
  const procs = new Set<FerryProcess>();
  const ready = { gateway: /ferry gateway listening/, agent: /ferry agent running/, sim: /ferry sim device/ };
  return {
    dir, port, httpPort, httpsPort, apiPort, device, socket, received, token,
    async start(name) {
      const p = startFerry([name, '--config', join(dir, `${name}.yaml`)], {
        readyPattern: ready[name], logFile: join(dir, `${name}.log`),
        ...(name === 'agent' && opts.agentEnv ? { env: opts.agentEnv } : {}), ...(opts.wrap ? { wrap: opts.wrap } : {}),
      });
      procs.add(p);
      void p.exited.then(() => procs.delete(p));
      await p.ready;
      return p;
    },
    async agentStats() {
      try {
        const r = await localRequest(socket, { op: 'stats' }, 2000);
        return r.ok ? (r.stats as AgentStats) : null;
      } catch {
        return null;
      }
    },
    async lines() {
      const text = await readFile(received, 'utf8').catch(() => '');
      return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
    },
    async cleanup() {
      await Promise.all([...procs].map((p) => stopProcess(p, 2000)));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a value other than undefined, or fails after `msMax`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, msMax = 20_000): Promise<T> {
  const until = Date.now() + msMax;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out after ${msMax} ms waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * Stops the agent gracefully at a moment it has nothing un-acked and returns its final lastSeq
 * (seqs are handed out without gaps, so 1..lastSeq is everything it generated).
 */
export async function drainAndStopAgent(rig: Rig, agent: FerryProcess): Promise<number> {
  let current = agent;
  for (let attempt = 0; attempt < 20; attempt++) {
    await waitFor('agent backlog to drain', async () => {
      const s = await rig.agentStats();
      return s && s.backlog === 0 && s.inflight === 0 && s.link === 'connected' ? true : undefined;
    });
    await stopProcess(current);
    const m = current.output().match(/ferry agent stopped; lastSeq (\d+) ackedSeq (\d+) backlog (\d+)/);
    if (m && m[1] === m[2]) return Number(m[1]);
    current = await rig.start('agent');
  }
  throw new Error('agent never stopped with an empty backlog');
}

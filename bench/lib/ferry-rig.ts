/**
 * Real `ferry gateway` and `ferry agent` processes for the end-to-end benchmarks (tunnel, latency,
 * idle), configured only through their YAML files and started with the CLI, as a user would: the
 * gateway and the agent are being reworked, and these stay valid as long as the CLI and the
 * configuration keys do. Each process runs under `taskset -c CPUS`.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { localRequest } from '../../agent/local-api.js';
import { ferryBin } from '../../cli/proc.js';
import type { Cleanup } from './cleanup.js';
import { writeAgentConfig } from './configs.js';
import { pinnedNode, spawnProc, type Proc } from './proc.js';
import { sleep } from './timing.js';

export interface RigOptions {
  cpus: string;
  /** BENCH_CPU_PROF: ferry processes write V8 CPU profiles here */
  cpuProfDir: string | null;
}

/** Where a ferry process's log goes: the run's temp dir, or BENCH_LOG_DIR (kept after the run) when set. */
const logFile = (dir: string, name: string): string => (process.env.BENCH_LOG_DIR ? join(process.env.BENCH_LOG_DIR, `${name}.${Date.now()}.log`) : join(dir, `${name}.log`));

/** Node options of a ferry process: V8 CPU profile (BENCH_CPU_PROF), plus BENCH_FERRY_NODE_ARGS (space-separated, e.g. --trace-gc). */
export const profArgs = (o: RigOptions, name: string): string[] => [
  ...(o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`, `--cpu-prof-name=${name}.${Date.now()}.cpuprofile`] : []),
  ...(process.env.BENCH_FERRY_NODE_ARGS ?? '').split(' ').filter((a) => a !== ''),
];

/** One route for every target to the MQTT handler, QoS 1 (acks after the broker's PUBACK). */
export const mqttRoute = (url: string): string[] => ['  - match: "#"', '    handler: mqtt', `    url: ${url}`, '    qos: 1'];

/** One route for every target to a durable file handler. */
export const fileRoute = (path: string): string[] => ['  - match: "#"', '    handler: file', `    path: ${path}`, '    sync: always'];

/** How the agent reaches the gateway: the TCP tunnel, or HTTP long-poll (issue 11). */
export type Carrier = 'tcp' | 'longpoll';

/**
 * Thrown when this build has no long-poll yet (the gateway refuses `listen.http`, the agent an
 * `http://` gateway URL, or the gateway names no HTTP port): the benchmark says so instead of a stack.
 */
export class LongpollMissing extends Error {
  constructor(detail: string) {
    super(`long-poll is not in this build: ${detail}`);
  }
}

export interface GatewaySpec {
  /** YAML lines of the `routes:` list */
  routes: string[];
  /** also listen for long-poll (`listen.http: 127.0.0.1:0`); its port comes from the 'gateway: listening' log line (needs log level info or debug) */
  http?: boolean;
  /** `limits:` keys to set; one this build does not know is dropped and named in `dropped` */
  limits?: Record<string, number>;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** also serve the application API (`listen.api: 127.0.0.1:0`); its URL is read from 'ferry gateway api listening on URL' */
  api?: boolean;
  /** further top-level YAML lines (e.g. a `downlink:` block) */
  yaml?: string[];
}

export interface StartedGateway {
  proc: Proc;
  port: number;
  /** the long-poll listener's port (spec.http), else null */
  httpPort: number | null;
  /** the application API's URL, http://HOST:PORT (spec.api), else null */
  apiUrl: string | null;
  /** the limits the running gateway was given */
  limits: Record<string, number>;
  /** limit keys this build refused as unknown */
  dropped: string[];
}

function gatewayYaml(dir: string, spec: GatewaySpec, limits: Record<string, number>): string {
  // Loopback only; bench clients (idle-agents) say HELLO as thousands of unregistered agents: auth stays off, as measured before.
  const lines = ['listen:', '  tcp: 127.0.0.1:0', '  admin: 127.0.0.1:0', ...(spec.http ? ['  http: 127.0.0.1:0'] : []), ...(spec.api ? ['  api: 127.0.0.1:0'] : []), `dataDir: ${join(dir, 'gateway')}`, 'auth:', '  required: false', 'routes:', ...spec.routes];
  if (Object.keys(limits).length > 0) {
    // `group.key` names a key of a nested map (limits.longpoll.*).
    const flat = Object.entries(limits).filter(([k]) => !k.includes('.'));
    const groups = new Map<string, [string, number][]>();
    for (const [k, v] of Object.entries(limits)) {
      const [group, key] = k.split('.', 2) as [string, string | undefined];
      if (key !== undefined) groups.set(group, [...(groups.get(group) ?? []), [key, v]]);
    }
    lines.push('limits:', ...flat.map(([k, v]) => `  ${k}: ${v}`));
    for (const [group, kvs] of groups) lines.push(`  ${group}:`, ...kvs.map(([k, v]) => `    ${k}: ${v}`));
  }
  if (spec.logLevel) lines.push('log:', `  level: ${spec.logLevel}`);
  lines.push(...(spec.yaml ?? []));
  return `${lines.join('\n')}\n`;
}

/**
 * Starts `ferry gateway` on a free port. Limits the configuration schema does not know (yet) are
 * dropped one by one: the CLI names the first unknown key (`limits.X: unknown key`) and exits.
 */
export async function startGateway(dir: string, spec: GatewaySpec, o: RigOptions, cleanup: Cleanup): Promise<StartedGateway> {
  const limits = { ...spec.limits, ...envLimits() };
  const dropped: string[] = [];
  for (;;) {
    const file = join(dir, 'gateway.yaml');
    await writeFile(file, gatewayYaml(dir, spec, limits));
    const proc = spawnProc('ferry gateway', pinnedNode(o.cpus, ferryBin, ['gateway', '--config', file], profArgs(o, 'gateway')), { cleanup, logFile: logFile(dir, 'gateway') });
    try {
      const m = await proc.waitFor(/ferry gateway listening on [^\s:]+:(\d+)/);
      const apiUrl = spec.api ? (await proc.waitFor(/^ferry gateway api listening on (\S+)$/m))[1]! : null;
      return { proc, port: Number(m[1]), httpPort: spec.http ? await httpPortOf(proc, spec) : null, apiUrl, limits, dropped };
    } catch (err) {
      await proc.stop();
      await streamsClosed(proc);
      if (/listen\.http: unknown key/.test(proc.output())) throw new LongpollMissing('`ferry gateway` refuses listen.http (unknown key)');
      if (err instanceof LongpollMissing) throw err;
      const unknown = proc.output().match(/limits\.(\w+): unknown key/)?.[1];
      if (unknown === undefined || !(unknown in limits)) throw err;
      delete limits[unknown];
      dropped.push(unknown);
    }
  }
}

/**
 * The long-poll port, from the `http` field ("HOST:PORT") of the gateway's JSON log line
 * 'gateway: listening' (stderr; logged before the stdout line above, so it is there by now).
 */
async function httpPortOf(proc: Proc, spec: GatewaySpec): Promise<number> {
  if (spec.logLevel === 'warn' || spec.logLevel === 'error') throw new Error(`the long-poll port is read from an info log line; log level ${spec.logLevel} hides it`);
  const line = (await proc.waitFor(/^\{.*"msg":"gateway: listening".*\}$/m, 5000, 'any'))[0];
  const http = (JSON.parse(line) as { http?: unknown }).http;
  const port = typeof http === 'string' ? /:(\d+)$/.exec(http)?.[1] : undefined;
  if (port === undefined) throw new LongpollMissing(`the gateway's 'gateway: listening' line has no http field "HOST:PORT": ${line}`);
  return Number(port);
}

/** The agent's `gateway:` URL for `carrier` (loopback). */
export function gatewayUrl(gw: StartedGateway, carrier: Carrier): string {
  if (carrier === 'tcp') return `tcp://127.0.0.1:${gw.port}`;
  if (gw.httpPort === null) throw new Error('gatewayUrl: this gateway was started without http (GatewaySpec.http)');
  return `http://127.0.0.1:${gw.httpPort}`;
}

/** The gateway's 'gateway: long-poll totals' log line (logged on SIGTERM), once it stopped; null when absent. */
export interface LongpollTotals {
  /** HTTP requests answered */
  requests: number;
  /** long-poll sessions opened */
  sessions: number;
}

export async function longpollTotals(gw: StartedGateway): Promise<LongpollTotals | null> {
  await gw.proc.stop();
  await streamsClosed(gw.proc);
  const line = gw.proc.output().split('\n').reverse().find((l) => l.startsWith('{') && l.includes('"msg":"gateway: long-poll totals"'));
  if (line === undefined) return null;
  const t = JSON.parse(line) as { requests?: unknown; sessions?: unknown };
  if (typeof t.requests !== 'number' || typeof t.sessions !== 'number') throw new Error(`'gateway: long-poll totals' without numeric requests and sessions: ${line}`);
  return { requests: t.requests, sessions: t.sessions };
}

/** BENCH_GATEWAY_LIMITS=key=value,…: gateway limits set on top of the benchmark's own (experiments). */
function envLimits(): Record<string, number> {
  const raw = process.env.BENCH_GATEWAY_LIMITS ?? '';
  return Object.fromEntries(raw.split(',').filter((kv) => kv.trim() !== '').map((kv) => {
    const m = /^\s*(\w+)\s*=\s*(\d+)\s*$/.exec(kv);
    if (!m) throw new Error(`BENCH_GATEWAY_LIMITS: expected key=integer, got '${kv}'`);
    return [m[1]!, Number(m[2])];
  }));
}

/** Waits until a process's stdout and stderr are drained (its 'exit' can come before its last output). */
async function streamsClosed(proc: Proc): Promise<void> {
  const streams = [proc.child.stdout, proc.child.stderr].filter((s) => s !== null && !s.closed);
  await Promise.race([Promise.all(streams.map((s) => new Promise((r) => s!.once('close', r)))), sleep(2000)]);
}

export interface StartedAgent {
  proc: Proc;
  socket: string;
}

/**
 * Starts `ferry agent` (no sources, `store.sync: always`) with `gateway: URL` (gatewayUrl) and
 * waits until its link is connected. `yaml`: further top-level lines of its configuration.
 */
export async function startAgent(dir: string, gateway: string, o: RigOptions, cleanup: Cleanup, yaml: string[] = []): Promise<StartedAgent> {
  const socket = join(dir, 'agent.sock');
  const config = await writeAgentConfig(dir, { gateway, socket, yaml });
  const proc = spawnProc('ferry agent', pinnedNode(o.cpus, ferryBin, ['agent', '--config', config], profArgs(o, 'agent')), { cleanup, logFile: logFile(dir, 'agent') });
  try {
    await proc.waitFor(/ferry agent running; local socket/);
  } catch (err) {
    await streamsClosed(proc);
    // A build without long-poll names only tcp:// and tls:// URLs: "gateway: a URL like tcp://HOST:PORT or tls://HOST:PORT [CONFIG_INVALID]".
    if (gateway.startsWith('http') && /gateway: a URL like tcp:\/\/HOST:PORT or tls:\/\/HOST:PORT \[/.test(proc.output())) throw new LongpollMissing(`\`ferry agent\` refuses gateway: ${gateway}`);
    throw err;
  }
  await waitConnected(socket);
  return { proc, socket };
}

/** Rethrows `err` with the agent's stats appended (what it holds, its link state): the first thing to read when a run stalls. */
export async function withAgentStats(err: unknown, socket: string): Promise<never> {
  const res = await localRequest(socket, { op: 'stats' }, 2000).catch((e: Error) => ({ error: e.message }));
  throw new Error(`${(err as Error).message}\nagent stats: ${JSON.stringify(res)}`, { cause: err });
}

/** Resolves once the agent behind `socket` reports its link connected. */
export async function waitConnected(socket: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const res = await localRequest(socket, { op: 'stats' }, 2000).catch(() => null);
    if (res?.ok && (res.stats as { link?: string }).link === 'connected') return;
    if (Date.now() > deadline) throw new Error(`agent not connected to the gateway within ${ms} ms (last stats: ${JSON.stringify(res)})`);
    await sleep(20);
  }
}

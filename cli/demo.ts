/**
 * `ferry demo`: the whole path on one machine with built-in defaults. A gateway (file handler,
 * authentication on: the demo registers its agent and hands it the token), the firmware simulator
 * and an agent run as separate processes; midway the gateway and then the
 * agent are SIGKILLed and restarted; at the end the file is compared with what the agent generated.
 */
import { mkdtemp, mkdir, readFile, rm, writeFile, stat } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localRequest } from '../agent/local-api.js';
import { AgentRegistry } from '../gateway/agents.js';
import type { AgentStats } from '../agent/main.js';
import { startFerry, stopProcess, type FerryProcess } from './proc.js';
import { tallyFile } from './tally.js';

export interface DemoOptions {
  durationS: number;
  rateHz: number;
  keepDir?: string;
  write?: (s: string) => void;
}

const agentId = 'demo-agent';

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Registers `id` in the gateway's registry (as `ferry gateway add-agent` does) and returns its token; a kept directory's agent gets a new one. */
async function registerAgent(gatewayDataDir: string, id: string): Promise<string> {
  const registry = await AgentRegistry.open(gatewayDataDir, { watchIntervalMs: 0 });
  try {
    return registry.get(id)?.revoked === false ? await registry.issueToken(id) : await registry.add(id);
  } finally {
    registry.close();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runDemo(opts: DemoOptions): Promise<number> {
  const write = opts.write ?? ((s: string) => process.stdout.write(s));
  const dir = opts.keepDir ?? (await mkdtemp(join(tmpdir(), 'ferry-demo-')));
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const device = join(dir, 'tty', 'ttyFERRY0');
  const received = join(dir, 'received.jsonl');
  const socket = join(dir, 'agent.sock');
  // The gateway authenticates agents (the default): register the demo's agent and give it its token.
  const token = await registerAgent(join(dir, 'gateway'), agentId);
  await writeFile(join(dir, 'gateway.yaml'), `listen:\n  tcp: 127.0.0.1:${port}\n  admin: 127.0.0.1:0\ndataDir: ${join(dir, 'gateway')}\nroutes:\n  - match: "#"\n    handler: file\n    path: ${received}\n`);
  await writeFile(join(dir, 'sim.yaml'), `link: ${device}\nrateHz: ${opts.rateHz}\nwaveform:\n  kind: sine\n  baseline: 20\n  amplitude: 5\n  periodMs: 8000\n  noise: 0.2\n`);
  await writeFile(join(dir, 'agent.yaml'), [
    `id: ${agentId}`, `token: ${JSON.stringify(token)}`, `gateway: tcp://127.0.0.1:${port}`, `dataDir: ${join(dir, 'agent')}`, `socket: ${socket}`, 'profile: pi-zero-2w',
    'link:', '  reconnectDelayMsMin: 100', '  reconnectDelayMsMax: 1000',
    'sources:', `  - kind: serial`, `    path: ${device}`, '    reopenDelayMs: 200',
    'rules:',
    '  - { kind: threshold, key: t, above: 22, hysteresis: 0.5, target: alerts/temperature }',
    '  - { kind: delta, key: t, delta: 0.3, target: telemetry/temperature }',
    '  - { kind: heartbeat, everyMs: 1000, target: status/heartbeat }', '',
  ].join('\n'));

  let ok = false;
  const procs = new Set<FerryProcess>();
  const start = async (name: string, args: string[], ready: RegExp): Promise<FerryProcess> => {
    const p = startFerry(args, { readyPattern: ready, logFile: join(dir, `${name}.log`) });
    procs.add(p);
    void p.exited.then(() => procs.delete(p));
    await p.ready;
    return p;
  };
  const startGateway = () => start('gateway', ['gateway', '--config', join(dir, 'gateway.yaml')], /ferry gateway listening/);
  const startAgent = () => start('agent', ['agent', '--config', join(dir, 'agent.yaml')], /ferry agent running/);

  const tty = process.stdout.isTTY === true;
  let phase = 'starting';
  let fileLines = 0;
  let fileBytesRead = 0;
  let last: AgentStats | null = null;
  const countFile = async (): Promise<void> => {
    const size = await stat(received).then((s) => s.size, () => 0);
    if (size <= fileBytesRead) return;
    const text = (await readFile(received)).subarray(fileBytesRead, size);
    const end = text.lastIndexOf(10) + 1;
    for (let i = 0; i < end; i++) if (text[i] === 10) fileLines++;
    fileBytesRead += end;
  };
  const agentStats = async (): Promise<AgentStats | null> => {
    try {
      const res = await localRequest(socket, { op: 'stats' }, 1000);
      return res.ok ? (res.stats as AgentStats) : null;
    } catch {
      return null;
    }
  };
  let lastPrintMs = 0;
  const show = async (): Promise<void> => {
    await countFile();
    const s = await agentStats();
    if (s) last = s;
    const f = (v: number | undefined): string => (s && v !== undefined ? String(v) : '-');
    const line = `readings ${f(s?.readings)}  stored ${f(s?.lastSeq)}  in flight ${f(s?.inflight)}  acked ${f(s?.ackedSeq)}  dispatched ${fileLines}  | ${phase}`;
    if (tty) write(`\r\x1b[2K${line}`);
    else if (Date.now() - lastPrintMs >= 2000) {
      write(`${line}\n`);
      lastPrintMs = Date.now();
    }
  };
  const progressFor = async (ms: number): Promise<void> => {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      await show();
      await sleep(Math.min(200, Math.max(0, until - Date.now())));
    }
  };
  const say = (msg: string): void => write(`${tty ? '\r\x1b[2K' : ''}${msg}\n`);

  try {
    write(`ferry demo: working in ${dir}\n`);
    const sim = await start('sim', ['sim', '--config', join(dir, 'sim.yaml')], /ferry sim device/);
    let gateway = await startGateway();
    let agent = await startAgent();
    phase = 'running';
    const stepMs = (opts.durationS * 1000) / 3;
    await progressFor(stepMs);

    say(`>>> SIGKILL gateway (pid ${gateway.pid})`);
    phase = 'gateway down';
    gateway.kill('SIGKILL');
    await gateway.exited;
    await progressFor(1500);
    gateway = await startGateway();
    say(`>>> gateway restarted (pid ${gateway.pid})`);
    phase = 'running';
    await progressFor(stepMs);

    say(`>>> SIGKILL agent (pid ${agent.pid})`);
    phase = 'agent down';
    agent.kill('SIGKILL');
    await agent.exited;
    await progressFor(1500);
    agent = await startAgent();
    say(`>>> agent restarted (pid ${agent.pid})`);
    phase = 'running';
    await progressFor(stepMs);

    phase = 'draining';
    await stopProcess(sim);
    // Heartbeats keep coming, so stop the agent at a moment it has nothing un-acked, then read its final seqs.
    let final: { lastSeq: number; ackedSeq: number } | null = null;
    const drainUntil = Date.now() + 60_000;
    while (final === null && Date.now() < drainUntil) {
      await show();
      const s = last as AgentStats | null;
      if (s && s.backlog === 0 && s.inflight === 0 && s.link === 'connected') {
        await stopProcess(agent);
        const m = agent.output().match(/ferry agent stopped; lastSeq (\d+) ackedSeq (\d+)/);
        if (m && m[1] === m[2]) final = { lastSeq: Number(m[1]), ackedSeq: Number(m[2]) };
        else agent = await startAgent();
      }
      await sleep(100);
    }
    await stopProcess(gateway);
    await countFile();
    if (tty) write('\n');
    if (!final) {
      say('ferry demo: FAILED: the agent did not drain its backlog within 60 s');
      return 1;
    }
    const t = tallyFile(await readFile(received, 'utf8').catch(() => ''), agentId, final.lastSeq);
    write([
      '',
      'tally (counted from the file handler\'s output, not from the agent\'s counters):',
      `  generated by the agent   ${t.generated}   (seq 1..${final.lastSeq})`,
      `  lines in the file        ${t.received}`,
      `  duplicates               ${t.duplicates}`,
      `  missing                  ${t.missing}`,
      `  out of order             ${t.outOfOrder}`,
      `ferry demo: ${t.ok ? 'OK: every packet arrived exactly once and in order per target, across a gateway kill and an agent kill' : 'FAILED'}`,
      '',
    ].join('\n'));
    ok = t.ok;
    return t.ok ? 0 : 1;
  } catch (err) {
    say(`ferry demo: FAILED: ${(err as Error).message}`);
    return 1;
  } finally {
    await Promise.all([...procs].map((p) => stopProcess(p, 3000)));
    if (ok && !opts.keepDir) await rm(dir, { recursive: true, force: true });
    else if (!ok) write(`ferry demo: logs kept in ${dir}\n`);
  }
}

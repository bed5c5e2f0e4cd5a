/**
 * The downlink wired in the agent (agent/main.ts): a real agent (in-process, real files, real
 * local socket) dialled into a fake gateway that speaks the tunnel protocol and sends DOWN
 * frames; the real `ferry listen` CLI as the local subscriber, and an exec route. Checks HELLO's
 * window, verdicts per route, the record across an agent restart, and stop with a subscriber
 * connected. (The test with the real gateway belongs to test/integration/.)
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentConfigSchema } from '../../agent/config.js';
import { runAgent, type RunningAgent } from '../../agent/main.js';
import { ferryBin } from '../../cli/proc.js';
import { silentLog } from '../../common/log.js';
import { encodeFrame, FrameDecoder } from '../../protocol/codec.js';
import { FrameType, type DownMessage, type DownResult, type Frame, type HelloFrame } from '../../protocol/frames.js';
import { pollUntil } from '../helpers/wait.js';

/** A gateway that welcomes every agent, keeps its HELLOs and DOWN_ACK results, and sends DOWN on request. */
async function fakeGateway(t: Test): Promise<{ url: string; hellos: HelloFrame[]; results: DownResult[]; down(messages: DownMessage[]): void }> {
  const hellos: HelloFrame[] = [];
  const results: DownResult[] = [];
  let current: Socket | null = null;
  const server: Server = createServer((socket) => {
    const decoder = new FrameDecoder();
    const send = (f: Frame): void => void socket.write(encodeFrame(f));
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      for (const f of decoder.push(chunk)) {
        if (f.t === FrameType.HELLO) {
          hellos.push(f);
          current = socket;
          send({ t: FrameType.WELCOME, session: `s${hellos.length}`, dispatchedSeq: f.ackedSeq, creditPackets: 100, creditBytes: 1 << 20 });
        } else if (f.t === FrameType.PING) send({ t: FrameType.PONG, id: f.id });
        else if (f.t === FrameType.DOWN_ACK) results.push(...f.results);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    (current as Socket | null)?.destroy();
    server.close(() => r());
  }));
  const port = (server.address() as { port: number }).port;
  return {
    url: `tcp://127.0.0.1:${port}`, hellos, results,
    down: (messages) => {
      if (!current) throw new Error('no agent connected');
      current.write(encodeFrame({ t: FrameType.DOWN, messages }));
    },
  };
}

const m = (id: string, target: string, data: DownMessage['data'] = 'x'): DownMessage => ({ id, target, data, ts: 1_700_000_000_000 });

/** Runs `ferry listen` (the built CLI) until it exits; stdout lines parsed. */
function listen(args: string[]): { done: Promise<{ code: number | null; lines: unknown[]; stderr: string }>; subscribed: Promise<void> } {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, [ferryBin, 'listen', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  let onSubscribed!: () => void;
  const subscribed = new Promise<void>((r) => (onSubscribed = r));
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
    if (stderr.includes('subscribed to')) onSubscribed();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const done = new Promise<{ code: number | null; lines: unknown[]; stderr: string }>((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, lines: stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as unknown), stderr });
    });
  });
  return { done, subscribed };
}

t.test('agent downlink - routes to ferry listen and to a command; verdicts recorded and answered from the record after a restart', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-agent-dl-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const gw = await fakeGateway(t);
  const out = join(dir, 'exec.out');
  const config = agentConfigSchema.parse({
    id: 'dev-1', gateway: gw.url, dataDir: join(dir, 'data'),
    link: { reconnectDelayMsMin: 20, reconnectDelayMsMax: 100 },
    downlink: {
      messagesMax: 8,
      routes: [
        { match: 'cmd/#', to: 'local', timeoutMs: 10_000 },
        { match: 'run/#', to: 'exec', command: ['/bin/sh', '-c', `cat >> ${out}; [ "$FERRY_TARGET" = run/ok ]`] },
      ],
    },
  });
  let agent: RunningAgent = await runAgent(config, { log: silentLog });
  t.teardown(() => agent.stop());
  await pollUntil(() => gw.hellos.length === 1, 10_000, 'HELLO');
  t.match(gw.hellos[0], { downMessagesMax: 8, downBytesMax: 256 * 1024 }, 'HELLO names the window');

  const l = listen(['--socket', agent.socketPath, '--target', 'cmd/#', '--count', '2']);
  await l.subscribed;
  const batch = [m('a1', 'cmd/led', { on: true }), m('a2', 'nowhere/x'), m('a3', 'run/ok', 'hello'), m('a4', 'cmd/fan', new Uint8Array([1, 2])), m('a5', 'run/bad', 'bye')];
  gw.down(batch);
  await pollUntil(() => gw.results.length === 5, 20_000, 'five verdicts');
  const { code, lines } = await l.done;
  t.equal(code, 0, 'ferry listen exits 0 after --count messages');
  t.same(lines, [
    { id: 'a1', target: 'cmd/led', data: { on: true }, ts: 1_700_000_000_000 },
    { id: 'a4', target: 'cmd/fan', data: { base64: 'AQI=' }, ts: 1_700_000_000_000 },
  ], 'one JSON line per message, in order');
  const verdicts = gw.results.slice();
  t.match(verdicts, [
    { id: 'a1', ok: true },
    { id: 'a2', ok: false, code: 'DOWNLINK_NO_ROUTE' },
    { id: 'a3', ok: true },
    { id: 'a4', ok: true },
    { id: 'a5', ok: false, code: 'DOWNLINK_EXEC_FAILED', reason: /exited with code 1/ },
  ], 'a verdict per message, in order');
  t.equal(await readFile(out, 'utf8'), 'hellobye', 'the command got each run/ message once');
  t.match(agent.stats().downlink, { accepted: 3, refused: { DOWNLINK_NO_ROUTE: 1, DOWNLINK_EXEC_FAILED: 1 }, repeats: 0, waiting: 0 });

  // Restart; the gateway, never having seen these DOWN_ACKs, say, sends the same messages again.
  await agent.stop();
  agent = await runAgent(config, { log: silentLog });
  await pollUntil(() => gw.hellos.length === 2, 10_000, 'the second HELLO');
  gw.down(batch);
  await pollUntil(() => gw.results.length === 10, 20_000, 'five verdicts again');
  t.same(gw.results.slice(5), verdicts, 'the same verdicts, from the record (no subscriber now, yet a1 and a4 are accepted)');
  t.equal(await readFile(out, 'utf8'), 'hellobye', 'the command did not run again');
  t.match(agent.stats().downlink, { accepted: 0, repeats: 5 });

  // A subscriber that stays connected does not hold up the agent's stop.
  const held = listen(['--socket', agent.socketPath, '--target', '#']);
  await held.subscribed;
  t.equal(agent.stats().downlink.subscriptions, 1);
  await agent.stop();
  const end = await held.done;
  t.not(end.code, 0, 'ferry listen exits non-zero when the agent goes away');
  t.match(end.stderr, /AGENT_UNREACHABLE/);
});

t.test('agent downlink - with no routes the agent still names a window, and refuses with DOWNLINK_NO_ROUTE', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-agent-dl-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const gw = await fakeGateway(t);
  const agent = await runAgent(agentConfigSchema.parse({ id: 'dev-2', gateway: gw.url, dataDir: join(dir, 'data') }), { log: silentLog });
  t.teardown(() => agent.stop());
  await pollUntil(() => gw.hellos.length === 1, 10_000, 'HELLO');
  t.match(gw.hellos[0], { downMessagesMax: 32 }, 'the default window');
  gw.down([m('z1', 'cmd/x')]);
  await pollUntil(() => gw.results.length === 1, 10_000, 'the verdict');
  t.match(gw.results, [{ id: 'z1', ok: false, code: 'DOWNLINK_NO_ROUTE', reason: /no downlink route matches target cmd\/x/ }]);
});

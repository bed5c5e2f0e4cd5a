/**
 * Issue 10, case 6, against the gateway as gateway/main.ts composes it (real sockets, TLS): one
 * remote address must not take the whole TLS port with silent connections, nor starve the other
 * addresses with reconnect churn. All of 127.0.0.0/8 is loopback on Linux, so a client socket
 * bound to 127.0.0.2 is another address to the gateway.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { createLog } from '../../common/log.js';
import { gatewayConfigSchema } from '../../gateway/config.js';
import { runGateway, type RunningGateway } from '../../gateway/main.js';
import { ErrorCode } from '../../protocol/errors.js';
import { FrameType, protocolVersion, type Frame } from '../../protocol/frames.js';
import { SocketTransport } from '../../protocol/socket-transport.js';
import { makeCerts } from '../helpers/certs.js';
import { pollUntil } from '../helpers/wait.js';

/** A subtest, as `t.test` hands it to its callback. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const certs = makeCerts(t.testdir());
const ca = readFileSync(certs.main.ca);

async function gateway(t: Test, limits: Record<string, unknown>): Promise<{ gw: RunningGateway; lines: string[] }> {
  const dir = t.testdir();
  const lines: string[] = [];
  const config = gatewayConfigSchema.parse({
    listen: { tcp: '127.0.0.1:0', tls: '127.0.0.1:0', admin: '127.0.0.1:0' },
    tls: { cert: certs.main.gateway.cert, key: certs.main.gateway.key },
    auth: { required: false },
    dataDir: join(dir, 'gw'), limits,
    routes: [{ match: '#', handler: 'file', path: join(dir, 'out.jsonl') }],
  });
  const gw = await runGateway(config, { log: createLog({ write: (l) => lines.push(l) }) });
  t.teardown(() => gw.stop());
  return { gw, lines };
}

/**
 * Opens a session from `localAddress`: TLS (or plaintext) connect, HELLO, and the gateway's first
 * answer's code ('WELCOME', a BYE's code, or 'closed' when the connection ended without a frame).
 */
function session(port: number, localAddress: string, agent: string, useTls: boolean): Promise<string> {
  return new Promise((resolve) => {
    const raw = connect({ host: '127.0.0.1', port, localAddress });
    raw.on('error', () => undefined);
    const socket = useTls ? tlsConnect({ socket: raw, ca, servername: 'localhost' }) : raw;
    socket.on('error', () => undefined);
    let answered = false;
    const answer = (code: string): void => {
      if (answered) return;
      answered = true;
      socket.destroy();
      raw.destroy();
      resolve(code);
    };
    socket.once('close', () => answer('closed'));
    socket.once(useTls ? 'secureConnect' : 'connect', () => {
      const tr = new SocketTransport(socket);
      tr.onFrame((f: Frame) => answer(f.t === FrameType.WELCOME ? 'WELCOME' : f.t === FrameType.BYE ? f.code : `frame ${f.t}`));
      tr.send({ t: FrameType.HELLO, version: protocolVersion, agent, ackedSeq: 0 });
    });
  });
}

const refusedTotal = (gw: RunningGateway): number => Object.values(gw.stats().refused).reduce((a, b) => a + b, 0);

t.test('admission attack - one address opening connectionsMax silent connections to the TLS port leaves room for another address', async (t) => {
  const connectionsMax = 24;
  // helloTimeoutMs is also the TLS handshake time-out: long, so the silent sockets stay for the whole test.
  const { gw, lines } = await gateway(t, { connectionsMax, connectionsPerAddressMax: 4, helloTimeoutMs: 60_000 });
  const port = gw.ports.tls!;
  const silent: Socket[] = [];
  t.teardown(() => { for (const s of silent) s.destroy(); });
  for (let i = 0; i < connectionsMax; i++) {
    const s = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1' });
    s.on('error', () => undefined);
    silent.push(s);
  }
  // Every attempt has been accepted by the gateway, and either holds a place or was refused.
  await pollUntil(() => gw.stats().connections + refusedTotal(gw) >= connectionsMax, 10_000, 'every silent connection counted');
  t.equal(gw.stats().connections, 4, 'the attacker holds connectionsPerAddressMax sockets, no more');
  t.equal(gw.stats().refused[ErrorCode.CONNECTIONS_PER_ADDRESS], connectionsMax - 4, 'the rest were refused at accept, before any handshake');
  t.equal(await session(port, '127.0.0.2', 'victim', true), 'WELCOME', 'another address completes a TLS handshake and a session');
  const closed = async (): Promise<number> => {
    await pollUntil(() => silent.filter((s) => s.destroyed).length >= connectionsMax - 4, 2000, 'the refused sockets to close').catch(() => undefined);
    return silent.filter((s) => s.destroyed).length;
  };
  t.equal(await closed(), connectionsMax - 4, 'and closed at once, not after the handshake time-out');
  t.ok(lines.some((l) => l.includes('"code":"CONNECTIONS_PER_ADDRESS"')), 'the refusals were logged');
});

for (const useTls of [false, true]) {
  const port = useTls ? 'tls' : 'tcp';
  t.test(`admission attack - ${port}: one address reconnecting in a tight loop does not keep another address's sessions out`, async (t) => {
    const { gw } = await gateway(t, { sessionsPerSecondMax: 20, sessionsPerAddressPerSecondMax: 5 });
    const to = gw.ports[port]!;
    let stop = false;
    let attempts = 0;
    // Eight loops from 127.0.0.1, each opening a plain TCP connection and dropping it as soon as it is up or refused.
    const churn = async (): Promise<void> => {
      while (!stop) {
        attempts++;
        await new Promise<void>((resolve) => {
          const s = connect({ host: '127.0.0.1', port: to, localAddress: '127.0.0.1' });
          s.on('error', () => undefined);
          s.once('connect', () => s.destroy());
          s.once('close', () => resolve());
        });
      }
    };
    const loops = Array.from({ length: 8 }, churn);
    t.teardown(async () => {
      stop = true;
      await Promise.all(loops);
    });
    await pollUntil(() => attempts > 200, 10_000, '200 attempts');
    const answers: string[] = [];
    for (let i = 0; i < 5; i++) answers.push(await session(to, '127.0.0.2', `victim-${i}`, useTls));
    t.same(answers, ['WELCOME', 'WELCOME', 'WELCOME', 'WELCOME', 'WELCOME'], `five sessions from another address admitted during the churn (${attempts} churn attempts so far)`);
  });
}

/**
 * Found by review: a socket refused at accept still counted against connectionsMax until its
 * BYE's 1 s timer destroyed it, so one address opening connections fast (and never closing them)
 * held all of connectionsMax with its own refusals and every other address was turned away.
 */
for (const useTls of [false, true]) {
  const port = useTls ? 'tls' : 'tcp';
  t.test(`admission attack - ${port}: one address opening connections it never closes, each refused, does not fill connectionsMax`, async (t) => {
    const connectionsMax = 64;
    const { gw } = await gateway(t, { connectionsMax, connectionsPerAddressMax: 4, helloTimeoutMs: 60_000 });
    const to = gw.ports[port]!;
    let stop = false;
    let attempts = 0;
    const open = new Set<Socket>();
    // The attacker: a new silent connection every ms or so from 127.0.0.1; each is dropped by the attacker only after 3 s.
    const flood = async (): Promise<void> => {
      while (!stop) {
        attempts++;
        const s = connect({ host: '127.0.0.1', port: to, localAddress: '127.0.0.1' });
        s.on('error', () => undefined);
        open.add(s);
        setTimeout(() => { s.destroy(); open.delete(s); }, 3000);
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    const loop = flood();
    t.teardown(async () => {
      stop = true;
      await loop;
      for (const s of open) s.destroy();
    });
    await pollUntil(() => attempts > 400, 10_000, '400 attempts');
    const answers: string[] = [];
    for (let i = 0; i < 5; i++) answers.push(await session(to, '127.0.0.2', `victim-${i}`, useTls));
    t.comment(`attempts ${attempts}; refused ${JSON.stringify(gw.stats().refused)}`);
    t.same(answers, ['WELCOME', 'WELCOME', 'WELCOME', 'WELCOME', 'WELCOME'], 'sessions from another address are admitted during the flood');
  });
}

/**
 * COUNT idle peers on one server, opened at RATE connections/s from ADDRESSES source addresses
 * (127.0.0.1, 127.0.0.2, …, round robin), each then kept alive and otherwise silent:
 *   ferry: HELLO (protocol version from protocol/frames.ts, agent ID `idle-NNNNN`, ackedSeq 0),
 *          WELCOME expected; then a PING every `pingIntervalMs` of the WELCOME (else 5 s), and a
 *          PONG for every PING. A BYE with `retryAfterMs` before WELCOME (admission pacing) is
 *          obeyed: the same agent dials again after that delay.
 *   mqtt:  MQTT 5 CONNECT (clean start, keep-alive 20 s, client ID `idle-NNNNN`), CONNACK 0
 *          expected; then a PINGREQ every 5 s.
 * The first ping of each peer comes at a random point of its first interval, so pings are spread.
 * Prints a JSON `status` line every second, `ramped` once every peer is either welcomed or gone
 * for good, and a last `status` on SIGTERM (then closes every socket and exits).
 * usage: idle-agents ferry|mqtt PORT COUNT RATE ADDRESSES
 */
import { connect, type Socket } from 'node:net';
import { encodeFrame, FrameDecoder } from '../../protocol/codec.js';
import { FrameType, protocolVersion, type Frame } from '../../protocol/frames.js';
import { fail, intArg } from './common.js';

const [mode, portArg, countArg, rateArg, addressesArg] = process.argv.slice(2);
if (mode !== 'ferry' && mode !== 'mqtt') fail('usage: idle-agents ferry|mqtt PORT COUNT RATE ADDRESSES');
const port = intArg(portArg, 'PORT');
const count = intArg(countArg, 'COUNT');
const rate = intArg(rateArg, 'RATE');
const addresses = intArg(addressesArg, 'ADDRESSES');
if (addresses > 250) fail('ADDRESSES: at most 250 (127.0.0.1 to 127.0.0.250)');
const defaultPingMs = 5000;

const c = {
  opened: 0, connected: 0, welcomed: 0, closed: 0, lostAfterWelcome: 0, retries: 0, gone: 0,
  pingsSent: 0, pongsRx: 0, pingsRx: 0, pingIntervalMs: null as number | null,
  byes: {} as Record<string, number>, errors: {} as Record<string, number>,
};
const sockets = new Set<Socket>();
let stopping = false;
const bump = (m: Record<string, number>, k: string): void => void (m[k] = (m[k] ?? 0) + 1);

const id = (i: number): string => `idle-${String(i).padStart(5, '0')}`;

/** One peer: dial, greet, then keep the session alive; `retryAfterMs` set by a BYE before WELCOME. */
function open(i: number): void {
  c.opened++;
  const socket = connect({ host: '127.0.0.1', port, localAddress: `127.0.0.${1 + (i % addresses)}` });
  sockets.add(socket);
  let welcomed = false;
  let retryAfterMs: number | null = null;
  let timer: NodeJS.Timeout | null = null;
  const keepAlive = (intervalMs: number, ping: () => void): void => {
    timer = setTimeout(() => {
      ping();
      timer = setInterval(ping, intervalMs);
    }, Math.random() * intervalMs);
  };
  const onWelcome = (intervalMs: number, ping: () => void): void => {
    welcomed = true;
    c.welcomed++;
    keepAlive(intervalMs, ping);
    if (c.welcomed === count) process.stdout.write(`${JSON.stringify({ t: 'all-welcomed', ...c })}\n`);
  };
  socket.setNoDelay(true);
  socket.on('connect', () => {
    c.connected++;
    if (mode === 'ferry') socket.write(encodeFrame({ t: FrameType.HELLO, version: protocolVersion, agent: id(i), ackedSeq: 0 }));
    else socket.write(mqttConnect(id(i), 20));
  });
  if (mode === 'ferry') {
    const decoder = new FrameDecoder();
    let pingId = 0;
    const ping = (): void => {
      c.pingsSent++;
      socket.write(encodeFrame({ t: FrameType.PING, id: ++pingId, ackedSeq: 0 }));
    };
    socket.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        bump(c.errors, `decode: ${(err as Error).message}`);
        socket.destroy();
        return;
      }
      for (const f of frames) {
        if (f.t === FrameType.WELCOME) {
          c.pingIntervalMs ??= f.pingIntervalMs ?? null;
          onWelcome(f.pingIntervalMs ?? defaultPingMs, ping);
        } else if (f.t === FrameType.PING) {
          c.pingsRx++;
          socket.write(encodeFrame({ t: FrameType.PONG, id: f.id }));
        } else if (f.t === FrameType.PONG) c.pongsRx++;
        else if (f.t === FrameType.BYE) {
          bump(c.byes, f.code);
          if (!welcomed && f.retryAfterMs !== undefined) retryAfterMs = f.retryAfterMs;
        }
      }
    });
  } else {
    let buffered: Buffer = Buffer.alloc(0);
    const ping = (): void => {
      c.pingsSent++;
      socket.write(Buffer.from([0xc0, 0x00]));
    };
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      for (let p = mqttPacket(buffered); p; p = mqttPacket(buffered)) {
        buffered = buffered.subarray(p.bytes);
        if (p.type === 2 && p.body[1] === 0) onWelcome(defaultPingMs, ping);
        else if (p.type === 2) bump(c.byes, `CONNACK 0x${p.body[1]?.toString(16)}`);
        else if (p.type === 13) c.pongsRx++;
        else if (p.type === 14) bump(c.byes, `DISCONNECT 0x${(p.body[0] ?? 0).toString(16)}`);
      }
    });
  }
  socket.on('error', (err: NodeJS.ErrnoException) => bump(c.errors, err.code ?? err.message));
  socket.on('close', () => {
    sockets.delete(socket);
    if (timer) clearTimeout(timer);
    c.closed++;
    if (stopping) return;
    if (welcomed) {
      c.welcomed--;
      c.lostAfterWelcome++;
      c.gone++;
    } else if (retryAfterMs !== null) {
      c.retries++;
      setTimeout(() => open(i), retryAfterMs);
    } else c.gone++;
  });
}

/** MQTT 5 CONNECT: clean start, no will, no credentials, no properties. */
function mqttConnect(clientId: string, keepAliveS: number): Buffer {
  const idBytes = Buffer.from(clientId);
  const body = Buffer.concat([
    Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 5, 0x02, keepAliveS >> 8, keepAliveS & 0xff, 0]),
    Buffer.from([idBytes.length >> 8, idBytes.length & 0xff]), idBytes,
  ]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]); // body < 128 bytes: one length byte
}

/** The first whole MQTT packet in `b`: its type (high nibble), body, and bytes taken; null if incomplete. */
function mqttPacket(b: Buffer): { type: number; body: Buffer; bytes: number } | null {
  let len = 0;
  let mul = 1;
  let at = 1;
  for (;; at++) {
    if (at >= b.length) return null;
    len += (b[at]! & 0x7f) * mul;
    mul *= 128;
    if ((b[at]! & 0x80) === 0) break;
  }
  const end = at + 1 + len;
  return end > b.length ? null : { type: b[0]! >> 4, body: b.subarray(at + 1, end), bytes: end };
}

const status = (t: string): void => void process.stdout.write(`${JSON.stringify({ t, ...c, open: sockets.size })}\n`);
setInterval(() => status('status'), 1000);
process.once('SIGTERM', () => {
  stopping = true;
  status('status');
  for (const s of sockets) s.destroy();
  setTimeout(() => process.exit(0), 100);
});

// Open at RATE/s on a 10 ms tick: every connection due by now, computed from the start (no drift).
const t0 = Date.now();
let next = 0;
let ramped = false;
const opener = setInterval(() => {
  const due = Math.min(count, Math.floor(((Date.now() - t0) * rate) / 1000) + 1);
  while (next < due) open(next++);
  if (next === count && !ramped && c.welcomed + c.gone === count) {
    ramped = true;
    clearInterval(opener);
    status('ramped');
  }
}, 10);

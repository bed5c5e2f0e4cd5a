/**
 * Producer for the ferry benchmark: one connection to the agent's local socket, `send` requests
 * pipelined with WINDOW outstanding. An answer `{"ok":true,"seq":N}` means the packet is durable
 * at the agent. usage: ferry-producer SOCKET PACKETS WINDOW TARGET
 */
import { createConnection } from 'node:net';
import { fail, intArg, payload, report, startCpu } from './common.js';

const [socketPath, packetsArg, windowArg, target] = process.argv.slice(2);
if (socketPath === undefined || target === undefined) fail('usage: ferry-producer SOCKET PACKETS WINDOW TARGET');
const packets = intArg(packetsArg, 'PACKETS');
const window = intArg(windowArg, 'WINDOW');
const targetJson = JSON.stringify(target);

let sent = 0;
let acked = 0;
let firstSendNs = 0n;
let buffered = '';
const socket = createConnection(socketPath);
socket.setEncoding('utf8');

/** Tops the window up with one write. */
function topUp(): void {
  let out = '';
  while (sent < packets && sent - acked < window) out += `{"op":"send","target":${targetJson},"data":${JSON.stringify(payload(sent++))}}\n`;
  if (out.length > 0) socket.write(out);
}

socket.once('connect', () => {
  startCpu();
  firstSendNs = process.hrtime.bigint();
  topUp();
});
socket.on('data', (chunk: string) => {
  buffered += chunk;
  let nl: number;
  while ((nl = buffered.indexOf('\n')) >= 0) {
    const res = JSON.parse(buffered.slice(0, nl)) as { ok: boolean; seq?: number; message?: string };
    buffered = buffered.slice(nl + 1);
    if (!res.ok) fail(`agent refused packet ${acked}: ${JSON.stringify(res)}`);
    acked++;
  }
  if (acked === packets) {
    report({ firstSendNs, lastAckNs: process.hrtime.bigint(), acked });
    socket.end();
  } else {
    topUp();
  }
});
socket.on('error', (err) => fail(`agent socket ${socketPath}: ${err.message}`));
socket.on('close', () => {
  if (acked < packets) fail(`agent closed the socket after ${acked} of ${packets} answers`);
});

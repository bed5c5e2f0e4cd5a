/** Shared by the load clients: arguments, the 100-byte payloads, the final report line. */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import type { ClientReport } from '../lib/client.js';

export const payloadBytes = 100;

/** Packet `i`'s payload: exactly 100 ASCII bytes, unique per packet ("p000000042-xxxx…"). */
export function payload(i: number): string {
  return `p${String(i).padStart(9, '0')}-`.padEnd(payloadBytes, 'x');
}

export function intArg(value: string | undefined, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: expected a positive integer, got '${value}'`);
  return n;
}

let cpuStart: NodeJS.CpuUsage | null = null;

/** Call just before the first send: the report counts CPU time from here. */
export function startCpu(): void {
  cpuStart = process.cpuUsage();
}

export function report(r: { firstSendNs: bigint; lastAckNs: bigint; acked: number }): void {
  const cpu = process.cpuUsage(cpuStart ?? undefined);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const cpus = readFileSync('/proc/self/status', 'utf8').match(/^Cpus_allowed_list:\s*(\S+)/m)?.[1] ?? '?';
  const line: ClientReport = { firstSendNs: String(r.firstSendNs), lastAckNs: String(r.lastAckNs), acked: r.acked, cpus, cpuSeconds };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

export function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

/**
 * POSTs bodies to the gateway's application API at `dest` (its messages URL) with an application
 * token over `maxSockets` keep-alive connections; each resolves on 201 (the message is durable
 * there) and rejects with the status and body otherwise.
 */
export function apiPoster(dest: string, token: string, maxSockets: number): { post(what: string, body: string): Promise<void>; close(): void } {
  const agent = new Agent({ keepAlive: true, maxSockets });
  const url = new URL(dest);
  const post = (what: string, body: string): Promise<void> => new Promise((resolve, reject) => {
    const req = request({
      agent, host: url.hostname, port: url.port, path: url.pathname, method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`POST of ${what} answered ${res.statusCode}: ${text.slice(0, 300)}`))));
    });
    req.on('error', (err) => reject(new Error(`POST of ${what}: ${err.message}`)));
    req.end(body);
  });
  return { post, close: () => agent.destroy() };
}

/** Shared by the load clients: arguments, the 100-byte payloads, the final report line. */
import { readFileSync } from 'node:fs';
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

/** This process's storage IO and memory, from /proc/self (Linux). */
import { readFileSync } from 'node:fs';
import type { IoBytes, Memory } from './task.js';

function field(text: string, name: string): number {
  const m = new RegExp(`^${name}:\\s*(\\d+)`, 'm').exec(text);
  if (!m) throw new Error(`/proc/self: no ${name} (is task IO accounting enabled?)`);
  return Number(m[1]);
}

/**
 * Counted by the kernel when this process dirties a page cache page (write_bytes) or reads from
 * the device (read_bytes); one small write + fdatasync dirties, and so counts, a whole 4 KiB page.
 * Writes the filesystem's journal makes on the process's behalf (jbd2) are not counted.
 */
export function ioBytes(): IoBytes {
  const t = readFileSync('/proc/self/io', 'utf8');
  return { read: field(t, 'read_bytes'), write: field(t, 'write_bytes'), cancelled: field(t, 'cancelled_write_bytes') };
}

export function ioSince(start: IoBytes): IoBytes {
  const now = ioBytes();
  return { read: now.read - start.read, write: now.write - start.write, cancelled: now.cancelled - start.cancelled };
}

/** RSS after a full GC (the worker runs with --expose-gc), and the peak so far. */
export function memory(): Memory {
  (globalThis as { gc?: () => void }).gc?.();
  const t = readFileSync('/proc/self/status', 'utf8');
  const m = process.memoryUsage();
  return { rssBytes: field(t, 'VmRSS') * 1024, hwmBytes: field(t, 'VmHWM') * 1024, heapUsedBytes: m.heapUsed, externalBytes: m.external + m.arrayBuffers };
}

export function cpusAllowed(): string {
  return /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '?';
}

/** CPU seconds (user + system) since `start`. */
export const cpuSince = (start: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1e6;
};

/** Bytes `n` records of `recordBytes` each, the i-th holding its index in its first 4 bytes. */
export function recordData(i: number, recordBytes: number): Buffer {
  const b = Buffer.alloc(recordBytes, 0x61);
  if (recordBytes >= 4) b.writeUInt32BE(i >>> 0, 0);
  return b;
}

/** This process's storage IO and memory, from /proc/self (Linux). */
import { readdirSync, readFileSync } from 'node:fs';
import type { IoBytes, Memory, Sched } from './task.js';

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

/**
 * RSS once the heap settled: a full GC (the worker runs with --expose-gc), half a second for V8's
 * concurrent sweeper to free dead Buffers' memory, another GC; and the peak RSS so far.
 */
export async function memory(): Promise<Memory> {
  const gc = (globalThis as { gc?: () => void }).gc ?? ((): void => undefined);
  gc();
  await new Promise((resolve) => setTimeout(resolve, 500));
  gc();
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

/**
 * Scheduler counters summed over this process's threads (main, libuv pool, V8 helpers):
 * /proc/self/task/TID/schedstat holds ns on CPU, ns runnable but waiting for a CPU, timeslices;
 * /proc/self/task/TID/status the context switches.
 */
export function sched(): Sched {
  const out: Sched = { runSeconds: 0, waitSeconds: 0, switches: 0 };
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const [run, wait] = readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').trim().split(' ').map(Number);
      const status = readFileSync(`/proc/self/task/${tid}/status`, 'utf8');
      out.runSeconds += (run ?? 0) / 1e9;
      out.waitSeconds += (wait ?? 0) / 1e9;
      out.switches += field(status, 'voluntary_ctxt_switches') + field(status, 'nonvoluntary_ctxt_switches');
    } catch {
      // the thread ended while being read
    }
  }
  return out;
}

export function schedSince(start: Sched): Sched {
  const now = sched();
  return { runSeconds: now.runSeconds - start.runSeconds, waitSeconds: now.waitSeconds - start.waitSeconds, switches: now.switches - start.switches };
}

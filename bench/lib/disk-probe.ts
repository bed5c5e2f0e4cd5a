/**
 * How long one small durable write takes on the disk the benchmark's stores live on, right now:
 * ferry syncs before it answers or acks, so its latency follows this (other work on a shared
 * machine can make it 10× slower from one minute to the next).
 */
import { closeSync, fdatasyncSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { distribution, type Distribution } from './stats.js';

/** `n` × (write of `bytes` + fdatasync) on a new file in `dir`, in ms. Blocks the caller (~n × 0.3 ms). */
export function probeSync(dir: string, n = 200, bytes = 150): Distribution {
  const file = join(dir, 'fsync-probe.dat');
  const fd = openSync(file, 'w');
  const buf = Buffer.alloc(bytes, 0x78);
  const ms = new Float64Array(n);
  try {
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      writeSync(fd, buf);
      fdatasyncSync(fd);
      ms[i] = Number(process.hrtime.bigint() - t0) / 1e6;
    }
  } finally {
    closeSync(fd);
    unlinkSync(file);
  }
  return distribution(ms);
}

export const describeProbe = (d: Distribution): string =>
  `disk: write + fdatasync of 150 B, ${d.count}×: p50 ${d.p50.toFixed(2)} ms, p90 ${d.p90.toFixed(2)} ms, p99 ${d.p99.toFixed(2)} ms, max ${d.max.toFixed(2)} ms`;

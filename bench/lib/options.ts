/** Benchmark options, read from the environment (see bench/README.md). */
export interface BenchOptions {
  /** packets per benchmark (BENCH_PACKETS) */
  packets: number;
  /** `taskset -c` CPU list every benchmarked process runs under (BENCH_CPUS) */
  cpus: string;
  /** producer requests/publishes outstanding at once (BENCH_WINDOW) */
  window: number;
  /** rounds of (ferry, peer), alternating; the table shows the median (BENCH_ROUNDS) */
  rounds: number;
  /** write V8 CPU profiles of the ferry agent and gateway into this directory (BENCH_CPU_PROF) */
  cpuProfDir: string | null;
  /** count fsync/fdatasync calls per process with `perf stat` tracepoints (BENCH_SYNCS, default on) */
  countSyncs: boolean;
}

// mqtt.js 5.16 reuses message ids past 65,535 un-acked publishes (TOOLCHAIN.md): stay well under.
const windowMax = 16_384;

export function int(env: NodeJS.ProcessEnv, name: string, fallback: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${name}: expected an integer from 1 to ${max}, got '${raw}'`);
  return n;
}

export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): BenchOptions {
  const cpus = env.BENCH_CPUS === undefined || env.BENCH_CPUS === '' ? '0,1' : env.BENCH_CPUS;
  if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(cpus)) throw new Error(`BENCH_CPUS: expected a taskset CPU list like 0,1 or 0-3, got '${cpus}'`);
  return {
    packets: int(env, 'BENCH_PACKETS', 20_000, 10_000_000),
    cpus,
    window: int(env, 'BENCH_WINDOW', 64, windowMax),
    rounds: int(env, 'BENCH_ROUNDS', 3, 100),
    cpuProfDir: env.BENCH_CPU_PROF ? env.BENCH_CPU_PROF : null,
    countSyncs: env.BENCH_SYNCS !== '0',
  };
}

/** Options of the store benchmark, read from the environment (see bench/README.md). */
import { int, type BenchOptions } from '../lib/options.js';

export const storeParts = ['throughput', 'footprint', 'recovery'] as const;
export type StorePart = (typeof storeParts)[number];

export interface StoreBenchOptions {
  /** `taskset -c` CPU list of every worker (BENCH_CPUS) */
  cpus: string;
  /** rounds of the throughput cells, sides alternating which goes first (BENCH_ROUNDS) */
  rounds: number;
  /** count fsync/fdatasync per worker with perf (BENCH_SYNCS) */
  countSyncs: boolean;
  /** write V8 CPU profiles of the ferry workers here (BENCH_CPU_PROF) */
  cpuProfDir: string | null;
  /** batches per throughput cell: records = batches × producers (BENCH_STORE_BATCHES) */
  batches: number;
  /** records of 100 bytes in the RSS backlog (BENCH_STORE_RSS_RECORDS) */
  rssRecords: number;
  /** payload MiB of the recovery backlog (BENCH_STORE_BACKLOG_MIB) */
  backlogMiB: number;
  /** record size of the recovery backlog (BENCH_STORE_BACKLOG_RECORD_BYTES) */
  backlogRecordBytes: number;
  /** warm-cache opens of the recovery backlog per side; the median is shown (BENCH_STORE_OPENS) */
  opens: number;
  /** also time a cold open after `echo 3 > /proc/sys/vm/drop_caches` (BENCH_STORE_DROP_CACHES, default on) */
  dropCaches: boolean;
  /** which parts run (BENCH_STORE_PARTS, comma-separated; default all) */
  parts: Set<StorePart>;
  /** extra Node options for every worker, both sides (BENCH_STORE_NODE_ARGS, space-separated), for experiments */
  nodeArgs: string[];
}

export function storeOptionsFromEnv(base: BenchOptions, env: NodeJS.ProcessEnv = process.env): StoreBenchOptions {
  const partsRaw = env.BENCH_STORE_PARTS ? env.BENCH_STORE_PARTS.split(',').map((s) => s.trim()) : [...storeParts];
  for (const p of partsRaw) {
    if (!(storeParts as readonly string[]).includes(p)) throw new Error(`BENCH_STORE_PARTS: unknown part '${p}' (expected ${storeParts.join(', ')})`);
  }
  return {
    cpus: base.cpus,
    rounds: base.rounds,
    countSyncs: base.countSyncs,
    cpuProfDir: base.cpuProfDir,
    batches: int(env, 'BENCH_STORE_BATCHES', 1000, 1_000_000),
    rssRecords: int(env, 'BENCH_STORE_RSS_RECORDS', 1_000_000, 100_000_000),
    backlogMiB: int(env, 'BENCH_STORE_BACKLOG_MIB', 1024, 64 * 1024),
    backlogRecordBytes: int(env, 'BENCH_STORE_BACKLOG_RECORD_BYTES', 1024, 64 * 1024),
    opens: int(env, 'BENCH_STORE_OPENS', 3, 100),
    dropCaches: env.BENCH_STORE_DROP_CACHES !== '0',
    parts: new Set(partsRaw as StorePart[]),
    nodeArgs: (env.BENCH_STORE_NODE_ARGS ?? '').split(' ').filter((a) => a !== ''),
  };
}

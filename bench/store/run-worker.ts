/** Runs a store task (bench/store/worker.ts) in its own Node process under `taskset -c`. */
import { fileURLToPath } from 'node:url';
import type { Cleanup } from '../lib/cleanup.js';
import { pinnedNode, spawnProc, type Proc } from '../lib/proc.js';
import { countSyncs, type SyncCount } from '../lib/syncs.js';
import { sleep } from '../lib/timing.js';
import type { ResultOf, Task } from './task.js';

const workerScript = fileURLToPath(new URL('./worker.js', import.meta.url));

export interface WorkerOptions {
  cpus: string;
  cleanup: Cleanup;
  /** count the worker's fsync/fdatasync calls with perf while it runs the measured part */
  countSyncs?: boolean;
  /** run with --cpu-prof, writing into this directory */
  cpuProfDir?: string | null;
  /** give up (and fail) after this long */
  timeoutMs?: number;
  /** extra Node options */
  nodeArgs?: string[];
}

export interface WorkerRun<R> {
  result: R;
  pid: number;
  /** fsync/fdatasync calls during the measured part; null if not counted */
  syncs: SyncCount | null;
}

function spawnWorker(task: Task, o: WorkerOptions): Proc {
  const name = `${task.side} ${task.op}`;
  const prof = o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`, `--cpu-prof-name=${task.side}-${task.op}.${Date.now()}.cpuprofile`] : [];
  return spawnProc(name, pinnedNode(o.cpus, workerScript, [JSON.stringify(task)], ['--expose-gc', ...(o.nodeArgs ?? []), ...prof]), { cleanup: o.cleanup });
}

async function resultOf<R>(proc: Proc, timeoutMs: number): Promise<R> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${proc.name}: not done within ${timeoutMs / 1000} s`)), timeoutMs);
  });
  try {
    const { code, signal } = await Promise.race([proc.exited, timeout]);
    const last = proc.output().trim().split('\n').pop() ?? '';
    if (code !== 0) throw new Error(`${proc.name} exited (${signal ?? code}); output:\n${proc.output().slice(-3000)}`);
    return JSON.parse(last) as R;
  } finally {
    clearTimeout(timer);
    await proc.stop();
  }
}

export async function runWorker<T extends Task>(task: T, o: WorkerOptions): Promise<WorkerRun<ResultOf[T['op']]>> {
  const proc = spawnWorker(task, o);
  let syncs: SyncCount | null = null;
  if (task.op === 'append-ack') {
    // Set up first (store open, records built), then counted from the go signal to exit.
    await proc.waitFor(/^ready$/m, 60_000);
    const counter = o.countSyncs ? await countSyncs(proc.name, proc.pid, o.cleanup) : null;
    process.kill(proc.pid, 'SIGUSR2');
    const result = await resultOf<ResultOf[T['op']]>(proc, o.timeoutMs ?? 600_000);
    syncs = counter ? await counter.stop() : null;
    return { result, pid: proc.pid, syncs };
  }
  return { result: await resultOf<ResultOf[T['op']]>(proc, o.timeoutMs ?? 600_000), pid: proc.pid, syncs };
}

/** Starts a crash-load task, lets it append for `loadMs` after its first durable append, then SIGKILLs it. */
export async function crashWorker(task: Extract<Task, { op: 'crash-load' }>, o: WorkerOptions, loadMs: number): Promise<void> {
  const proc = spawnWorker(task, o);
  await proc.waitFor(/^loading$/m, 60_000);
  await sleep(loadMs);
  process.kill(proc.pid, 'SIGKILL');
  await proc.exited;
}

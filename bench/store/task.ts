/**
 * What the harness asks a store worker (bench/store/worker.ts) to do, and what the worker
 * reports. Each task runs in a fresh pinned Node process, so /proc/self/io and RSS are one side's.
 */
export type Side = 'ferry' | 'sqlite';

/** The target every record is appended with (its bytes are not payload). */
export const benchTarget = 'bench';

export type Task =
  /** `producers` concurrent appenders, `records` records of `recordBytes`, durable; acks follow cumulatively */
  | { op: 'append-ack'; side: Side; dir: string; recordBytes: number; producers: number; records: number }
  /** builds a backlog quickly (ferry: sync none; sqlite: synchronous OFF), then closes */
  | { op: 'fill'; side: Side; dir: string; recordBytes: number; records: number }
  /** opens the store, reads the whole backlog in pages of `readBatch`, reports RSS */
  | { op: 'footprint'; side: Side; dir: string; readBatch: number }
  /** times opening the store and a first read */
  | { op: 'open'; side: Side; dir: string }
  /** appends durably with 16 producers until the harness kills it (SIGKILL) */
  | { op: 'crash-load'; side: Side; dir: string; recordBytes: number };

export interface IoBytes {
  /** bytes this process caused to be read from storage (/proc/self/io read_bytes) */
  read: number;
  /** bytes this process caused to be written to storage: pages it dirtied (write_bytes) */
  write: number;
  /** dirty bytes it truncated or deleted before they were written back (cancelled_write_bytes) */
  cancelled: number;
}

/** Scheduler counters over all of the worker's threads (/proc/self/task/TID/schedstat and status). */
export interface Sched {
  /** seconds on a CPU */
  runSeconds: number;
  /** seconds runnable but waiting for a CPU (the machine was busy) */
  waitSeconds: number;
  /** voluntary + involuntary context switches */
  switches: number;
}

export interface Memory {
  /** VmRSS, after a full GC */
  rssBytes: number;
  /** VmHWM: the peak RSS of the process so far */
  hwmBytes: number;
  heapUsedBytes: number;
  /** Buffers and ArrayBuffers outside the V8 heap */
  externalBytes: number;
}

interface Base {
  /** Cpus_allowed_list of the worker itself */
  cpus: string;
  /** user + system CPU seconds of the measured part */
  cpuSeconds: number;
  /** /proc/self/io difference over the measured part */
  io: IoBytes;
}

export interface AppendAckResult extends Base {
  seconds: number;
  sched: Sched;
  records: number;
  payloadBytes: number;
  /** ferry: syncs the store reports (stats().syncs); sqlite: null */
  storeSyncs: number | null;
}

export interface FillResult extends Base {
  seconds: number;
  records: number;
  payloadBytes: number;
  /** bytes of the store's files after close */
  storeBytes: number;
}

export interface FootprintResult extends Base {
  openMs: number;
  readMs: number;
  recordsRead: number;
  afterOpen: Memory;
  afterRead: Memory;
}

export interface OpenResult extends Base {
  /** from just before open until the store is usable (ferry: SegmentStore.open resolved) */
  openMs: number;
  /** a first read of up to 100 records after open */
  firstReadMs: number;
  /** highest seq the store knows after open */
  lastSeq: number;
  /** un-acked records after open (ferry: stats().backlogPackets; sqlite: not counted, null) */
  backlog: number | null;
  /** ferry: what the open found (stats().recovery); sqlite: null */
  recovered: { tailBytesCut: number; damagedSegments: number } | null;
  memory: Memory;
}

export interface ResultOf {
  'append-ack': AppendAckResult;
  fill: FillResult;
  footprint: FootprintResult;
  open: OpenResult;
  'crash-load': never;
}

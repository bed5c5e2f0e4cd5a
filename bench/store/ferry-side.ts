/**
 * ferry's side: the agent's SegmentStore, driven the way the agent drives it. Producers await
 * their appends (appends that arrive together share one fdatasync); acks follow cumulatively as
 * the link would send them: once a run of appends has resolved, one `ack(seq)` covers it.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SegmentStore } from '../../agent/store/segment-store.js';
import type { SyncPolicy } from '../../agent/store/store.js';
import { cpusAllowed, cpuSince, ioBytes, ioSince, memory, recordData, sched, schedSince } from './proc-self.js';
import { benchTarget, type AppendAckResult, type FillResult, type FootprintResult, type OpenResult, type Task } from './task.js';

/** Far above any backlog built here, and `reject`: a benchmark must never drop silently. */
const storeBytesMax = 64 * 1024 ** 3;

const openStore = (dir: string, sync: SyncPolicy): Promise<SegmentStore> => SegmentStore.open({ dir, sync, bytesMax: storeBytesMax, fullPolicy: 'reject' });

const filesBytes = (dir: string): number => readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);

/** Acks cumulatively: one ack in flight at a time, covering every append resolved so far in seq order. */
class CumulativeAcker {
  private readonly resolved: Uint8Array;
  private contiguous: number;
  private ackedTo: number;
  private acking = false;
  private finish!: () => void;
  private fail!: (err: unknown) => void;
  readonly allAcked: Promise<void>;

  constructor(private readonly store: SegmentStore, private readonly base: number, private readonly records: number) {
    this.resolved = new Uint8Array(records);
    this.contiguous = base;
    this.ackedTo = base;
    this.allAcked = new Promise((resolve, reject) => { this.finish = resolve; this.fail = reject; });
  }

  appended(seq: number): void {
    this.resolved[seq - this.base - 1] = 1;
    while (this.contiguous - this.base < this.records && this.resolved[this.contiguous - this.base] === 1) this.contiguous++;
    if (!this.acking) void this.run();
  }

  private async run(): Promise<void> {
    this.acking = true;
    try {
      while (this.ackedTo < this.contiguous) {
        const seq = this.contiguous;
        await this.store.ack(seq);
        this.ackedTo = seq;
      }
    } catch (err) {
      this.fail(err);
    }
    this.acking = false;
    if (this.ackedTo === this.base + this.records) this.finish();
  }
}

export async function appendAck(t: Extract<Task, { op: 'append-ack' }>, gate: () => Promise<void>): Promise<AppendAckResult> {
  const store = await openStore(t.dir, 'always');
  const data = Array.from({ length: t.records }, (_, i) => recordData(i, t.recordBytes));
  await gate();
  const cpu = process.cpuUsage();
  const io = ioBytes();
  const syncs = store.stats().syncs;
  const sch = sched();
  const start = process.hrtime.bigint();
  const acker = new CumulativeAcker(store, store.stats().lastSeq, t.records);
  let next = 0;
  const producer = async (): Promise<void> => {
    while (next < t.records) {
      const p = await store.append({ target: benchTarget, ts: Date.now(), data: data[next++]! });
      acker.appended(p.seq);
    }
  };
  await Promise.all(Array.from({ length: t.producers }, producer));
  await acker.allAcked;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const result: AppendAckResult = {
    seconds, sched: schedSince(sch), records: t.records, payloadBytes: t.records * t.recordBytes, storeSyncs: store.stats().syncs - syncs,
    io: ioSince(io), cpuSeconds: cpuSince(cpu), cpus: cpusAllowed(),
  };
  await store.close();
  return result;
}

/** sync `none`, up to `outstanding` appends in flight (they share the store's writes). */
export async function fill(t: Extract<Task, { op: 'fill' }>): Promise<FillResult> {
  const outstanding = 1024;
  const store = await openStore(t.dir, 'none');
  const cpu = process.cpuUsage();
  const io = ioBytes();
  const start = process.hrtime.bigint();
  let next = 0;
  const producer = async (): Promise<void> => {
    while (next < t.records) {
      const i = next++;
      await store.append({ target: benchTarget, ts: Date.now(), data: recordData(i, t.recordBytes) });
    }
  };
  await Promise.all(Array.from({ length: outstanding }, producer));
  await store.close();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { seconds, records: t.records, payloadBytes: t.records * t.recordBytes, storeBytes: filesBytes(t.dir), io: ioSince(io), cpuSeconds: cpuSince(cpu), cpus: cpusAllowed() };
}

export async function footprint(t: Extract<Task, { op: 'footprint' }>): Promise<FootprintResult> {
  const cpu = process.cpuUsage();
  const io = ioBytes();
  let start = process.hrtime.bigint();
  const store = await openStore(t.dir, 'always');
  const openMs = Number(process.hrtime.bigint() - start) / 1e6;
  const afterOpen = await memory();
  start = process.hrtime.bigint();
  let after = store.stats().ackedSeq;
  let recordsRead = 0;
  for (;;) {
    const page = await store.readAfter(after, t.readBatch);
    if (page.length === 0) break;
    recordsRead += page.length;
    after = page[page.length - 1]!.seq;
  }
  const readMs = Number(process.hrtime.bigint() - start) / 1e6;
  const afterRead = await memory();
  const result: FootprintResult = { openMs, readMs, recordsRead, afterOpen, afterRead, io: ioSince(io), cpuSeconds: cpuSince(cpu), cpus: cpusAllowed() };
  await store.close();
  return result;
}

export async function openTimed(t: Extract<Task, { op: 'open' }>): Promise<OpenResult> {
  const cpu = process.cpuUsage();
  const io = ioBytes();
  let start = process.hrtime.bigint();
  const store = await openStore(t.dir, 'always');
  const openMs = Number(process.hrtime.bigint() - start) / 1e6;
  const s = store.stats();
  start = process.hrtime.bigint();
  await store.readAfter(s.ackedSeq, 100);
  const firstReadMs = Number(process.hrtime.bigint() - start) / 1e6;
  const result: OpenResult = { openMs, firstReadMs, lastSeq: s.lastSeq, backlog: s.backlogPackets, recovered: s.recovery, memory: await memory(), io: ioSince(io), cpuSeconds: cpuSince(cpu), cpus: cpusAllowed() };
  await store.close();
  return result;
}

/** 16 producers appending durably until killed; says `loading` once the first append resolved. */
export async function crashLoad(t: Extract<Task, { op: 'crash-load' }>): Promise<never> {
  const store = await openStore(t.dir, 'always');
  let i = 0;
  const producer = async (): Promise<never> => {
    for (;;) {
      await store.append({ target: benchTarget, ts: Date.now(), data: recordData(i, t.recordBytes) });
      if (i++ === 0) process.stdout.write('loading\n');
    }
  };
  return Promise.race(Array.from({ length: 16 }, producer));
}

/**
 * The peer: a packet queue on better-sqlite3, as a store built on SQLite would be. WAL journal,
 * `synchronous = FULL` (every commit syncs the WAL), one transaction per batch of appends and
 * one per batch of acks. `seq` is `INTEGER PRIMARY KEY AUTOINCREMENT`, which keeps seqs
 * increasing across restarts even once every row is deleted, as the PacketStore contract needs.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { requireBetterSqlite3 } from '../lib/peers.js';
import { cpusAllowed, cpuSince, ioBytes, ioSince, memory, recordData, sched, schedSince } from './proc-self.js';
import { benchTarget, type AppendAckResult, type FillResult, type FootprintResult, type OpenResult, type Task } from './task.js';

/** The part of better-sqlite3's API used here (it is installed outside the project, without types). */
interface Statement {
  run(...params: unknown[]): { changes: number; lastInsertRowid: number | bigint };
  get(...params: unknown[]): Record<string, unknown> | undefined;
  all(...params: unknown[]): Record<string, unknown>[];
}
interface Database {
  prepare(sql: string): Statement;
  exec(sql: string): void;
  pragma(sql: string, opts?: { simple: boolean }): unknown;
  transaction<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R;
  close(): void;
}
type DatabaseClass = new (path: string) => Database;

const dbFile = (dir: string): string => join(dir, 'packets.db');

function openDb(dir: string, synchronous: 'FULL' | 'OFF'): Database {
  const Db = requireBetterSqlite3() as DatabaseClass;
  const db = new Db(dbFile(dir));
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.exec('CREATE TABLE IF NOT EXISTS packets (seq INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, ts REAL NOT NULL, data BLOB NOT NULL)');
  return db;
}

function statements(db: Database): { append: (batch: Buffer[]) => number; ack: (seq: number) => void } {
  const insert = db.prepare('INSERT INTO packets (target, ts, data) VALUES (?, ?, ?)');
  const del = db.prepare('DELETE FROM packets WHERE seq <= ?');
  const append = db.transaction((batch: Buffer[]): number => {
    let last = 0;
    const ts = Date.now();
    for (const data of batch) last = Number(insert.run(benchTarget, ts, data).lastInsertRowid);
    return last;
  });
  const ack = db.transaction((seq: number): void => void del.run(seq));
  return { append, ack };
}

const filesBytes = (dir: string): number => readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);

/** Batches of `producers` records: INSERT them in one transaction, then DELETE them in another. */
export function appendAck(t: Extract<Task, { op: 'append-ack' }>, gate: () => Promise<void>): Promise<AppendAckResult> {
  const db = openDb(t.dir, 'FULL');
  const { append, ack } = statements(db);
  const data = Array.from({ length: t.records }, (_, i) => recordData(i, t.recordBytes));
  return gate().then(() => {
    const cpu = process.cpuUsage();
    const io = ioBytes();
    const sch = sched();
    const start = process.hrtime.bigint();
    for (let i = 0; i < t.records; i += t.producers) ack(append(data.slice(i, i + t.producers)));
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const result: AppendAckResult = { seconds, sched: schedSince(sch), records: t.records, payloadBytes: t.records * t.recordBytes, storeSyncs: null, io: ioSince(io), cpuSeconds: cpuSince(cpu), cpus: cpusAllowed() };
    db.close();
    return result;
  });
}

export function fill(t: Extract<Task, { op: 'fill' }>): FillResult {
  const db = openDb(t.dir, 'OFF');
  const { append } = statements(db);
  const cpu = process.cpuUsage();
  const io = ioBytes();
  const start = process.hrtime.bigint();
  const batchRecords = 10_000;
  for (let i = 0; i < t.records; i += batchRecords) {
    append(Array.from({ length: Math.min(batchRecords, t.records - i) }, (_, k) => recordData(i + k, t.recordBytes)));
  }
  db.close();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { seconds, records: t.records, payloadBytes: t.records * t.recordBytes, storeBytes: filesBytes(t.dir), io: ioSince(io), cpuSeconds: cpuSince(cpu), cpus: cpusAllowed() };
}

/** What a SQLite-backed store does when it opens: the db, its pragmas and statements, the next seq and the first un-acked one. */
function openForUse(dir: string): { db: Database; lastSeq: number; firstSeq: number; page: Statement } {
  const db = openDb(dir, 'FULL');
  statements(db);
  const lastSeq = Number(db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'packets'").get()?.seq ?? 0);
  const firstSeq = Number(db.prepare('SELECT min(seq) AS s FROM packets').get()?.s ?? 0);
  const page = db.prepare('SELECT seq, target, ts, data FROM packets WHERE seq > ? ORDER BY seq LIMIT ?');
  return { db, lastSeq, firstSeq, page };
}

export async function footprint(t: Extract<Task, { op: 'footprint' }>): Promise<FootprintResult> {
  const cpu = process.cpuUsage();
  const io = ioBytes();
  let start = process.hrtime.bigint();
  const { db, page } = openForUse(t.dir);
  const openMs = Number(process.hrtime.bigint() - start) / 1e6;
  const afterOpen = await memory();
  start = process.hrtime.bigint();
  let after = 0;
  let recordsRead = 0;
  for (;;) {
    const rows = page.all(after, t.readBatch);
    if (rows.length === 0) break;
    recordsRead += rows.length;
    after = Number(rows[rows.length - 1]!.seq);
  }
  const readMs = Number(process.hrtime.bigint() - start) / 1e6;
  const afterRead = await memory();
  const result: FootprintResult = { openMs, readMs, recordsRead, afterOpen, afterRead, io: ioSince(io), cpuSeconds: cpuSince(cpu), cpus: cpusAllowed() };
  db.close();
  return result;
}

export async function openTimed(t: Extract<Task, { op: 'open' }>): Promise<OpenResult> {
  const cpu = process.cpuUsage();
  const io = ioBytes();
  let start = process.hrtime.bigint();
  const { db, lastSeq, firstSeq, page } = openForUse(t.dir);
  const openMs = Number(process.hrtime.bigint() - start) / 1e6;
  start = process.hrtime.bigint();
  page.all(firstSeq - 1, 100);
  const firstReadMs = Number(process.hrtime.bigint() - start) / 1e6;
  const result: OpenResult = { openMs, firstReadMs, lastSeq, backlog: null, recovered: null, memory: await memory(), io: ioSince(io), cpuSeconds: cpuSince(cpu), cpus: cpusAllowed() };
  db.close();
  return result;
}

/** Durable batches of 16 until killed; says `loading` once the first is committed. */
export function crashLoad(t: Extract<Task, { op: 'crash-load' }>): never {
  const db = openDb(t.dir, 'FULL');
  const { append } = statements(db);
  for (let i = 0; ; i += 16) {
    append(Array.from({ length: 16 }, (_, k) => recordData(i + k, t.recordBytes)));
    if (i === 0) process.stdout.write('loading\n');
  }
}

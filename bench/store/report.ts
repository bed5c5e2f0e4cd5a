/** The store benchmark's printed tables: side by side, ratios, and each goal met or missed. */
import { fmt } from '../lib/timing.js';
import type { FootprintRuns } from './footprint.js';
import type { RecoveryRuns } from './recovery.js';
import { cellName, type CellRuns, type SideRun } from './throughput.js';
import type { Side } from './task.js';

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export const goals = {
  throughputRatioMin: 2,
  writtenRatioMax: 0.5,
  rssGrowthBytesMax: 10e6,
  openMsMax: 1000,
  writeAmplificationMax: 1.2,
};

const verdict = (ok: boolean): string => (ok ? 'met' : 'MISSED');
const mb = (bytes: number): string => fmt(bytes / 1e6, 1);
const rate = (r: SideRun): number => r.records / r.seconds;
const writtenPerRecord = (r: SideRun): number => r.io.write / r.records;
const wa = (r: { io: { write: number }; payloadBytes: number }): number => r.io.write / r.payloadBytes;

export function throughputTable(runs: CellRuns[]): string[][] {
  const rows = [['append + ack (durable)', 'ferry rec/s', 'sqlite rec/s', 'ferry/sqlite', `goal ≥ ${goals.throughputRatioMin}×`,
    'ferry B written/rec', 'sqlite B written/rec', 'ferry/sqlite', `goal ≤ ${goals.writtenRatioMax}×`]];
  for (const c of runs) {
    const fr = median(c.ferry.map(rate));
    const sr = median(c.sqlite.map(rate));
    const fw = median(c.ferry.map(writtenPerRecord));
    const sw = median(c.sqlite.map(writtenPerRecord));
    rows.push([cellName(c.cell), fmt(fr), fmt(sr), fmt(fr / sr, 2), verdict(fr / sr >= goals.throughputRatioMin),
      fmt(fw), fmt(sw), fmt(fw / sw, 2), verdict(fw / sw <= goals.writtenRatioMax)]);
  }
  return rows;
}

export function throughputDetails(runs: CellRuns[]): string[][] {
  const rows = [['cell', 'side', 'records', 'rec/s min–max', 'write amp.', 'CPU µs/rec', 'run-queue wait µs/rec', 'ctx switches/rec', 'fdatasync/1000', 'fsync/1000', 'store syncs/1000', 'cpus']];
  for (const c of runs) {
    for (const side of ['ferry', 'sqlite'] as Side[]) {
      const r = c[side];
      const records = r.reduce((n, x) => n + x.records, 0);
      const per1000 = (k: 'fdatasync' | 'fsync'): string => (r.every((x) => x.syncs) ? fmt((r.reduce((n, x) => n + x.syncs![k], 0) / records) * 1000, 1) : 'n/a');
      const storeSyncs = r.every((x) => x.storeSyncs !== null) ? fmt((r.reduce((n, x) => n + x.storeSyncs!, 0) / records) * 1000, 1) : '-';
      rows.push([cellName(c.cell), side, fmt(r[0]!.records), `${fmt(Math.min(...r.map(rate)))}–${fmt(Math.max(...r.map(rate)))}`,
        fmt(median(r.map(wa)), 2), fmt((r.reduce((n, x) => n + x.cpuSeconds, 0) / records) * 1e6, 1),
        fmt((r.reduce((n, x) => n + x.sched.waitSeconds, 0) / records) * 1e6, 1), fmt(r.reduce((n, x) => n + x.sched.switches, 0) / records, 2), per1000('fdatasync'), per1000('fsync'), storeSyncs, r[r.length - 1]!.cpus]);
    }
  }
  return rows;
}

export interface FootprintReport {
  footprint: Partial<Record<Side, FootprintRuns>>;
  recovery: Partial<Record<Side, RecoveryRuns>>;
  /** the throughput cells, for the write amplification at 100 bytes */
  cells: CellRuns[];
  rssRecords: number;
  backlogLabel: string;
}

export function footprintTable(r: FootprintReport): string[][] {
  const rows = [['footprint and recovery', 'ferry', 'sqlite', 'ferry/sqlite', 'goal', 'ferry']];
  const pair = (name: string, f: number | null, s: number | null, show: (n: number) => string, goal = '', ok: boolean | null = null): void => {
    rows.push([name, f === null ? '-' : show(f), s === null ? '-' : show(s), f !== null && s !== null && s !== 0 ? fmt(f / s, 2) : '-', goal, ok === null ? '' : verdict(ok)]);
  };
  const fp = r.footprint;
  if (fp.ferry || fp.sqlite) {
    type Run = 'empty' | 'small' | 'backlog';
    const rss = (side: Side, k: Run): number | null => fp[side]?.[k].afterRead.rssBytes ?? null;
    const hwm = (side: Side, k: Run): number | null => fp[side]?.[k].afterRead.hwmBytes ?? null;
    const live = (side: Side, k: Run): number | null => (fp[side] ? fp[side]![k].afterRead.heapUsedBytes + fp[side]![k].afterRead.externalBytes : null);
    const grow = (side: Side, f: typeof rss, from: Run = 'empty'): number | null => (f(side, 'backlog') === null ? null : f(side, 'backlog')! - f(side, from)!);
    const n = fmt(r.rssRecords);
    const nSmall = fmt(Math.max(1, Math.round(r.rssRecords / 100)));
    pair('RSS MB, empty store, after open + read', rss('ferry', 'empty'), rss('sqlite', 'empty'), mb);
    pair(`RSS MB, ${nSmall} × 100 B backlog, after open + read-through`, rss('ferry', 'small'), rss('sqlite', 'small'), mb);
    pair(`RSS MB, ${n} × 100 B backlog, after open + read-through`, rss('ferry', 'backlog'), rss('sqlite', 'backlog'), mb);
    const g = grow('ferry', rss);
    pair(`  RSS growth MB, ${n} backlog − empty store`, g, grow('sqlite', rss), mb, `≤ ${mb(goals.rssGrowthBytesMax)}`, g === null ? null : g <= goals.rssGrowthBytesMax);
    pair(`  RSS growth MB, ${n} − ${nSmall} backlog`, grow('ferry', rss, 'small'), grow('sqlite', rss, 'small'), mb);
    pair('  peak RSS (VmHWM) growth MB, backlog − empty', grow('ferry', hwm), grow('sqlite', hwm), mb);
    pair('  live JS heap + Buffers MB, backlog − empty', grow('ferry', live), grow('sqlite', live), mb);
    pair(`open + read-through of ${n} records, s`, fp.ferry ? (fp.ferry.backlog.openMs + fp.ferry.backlog.readMs) / 1000 : null,
      fp.sqlite ? (fp.sqlite.backlog.openMs + fp.sqlite.backlog.readMs) / 1000 : null, (x) => fmt(x, 2));
    pair(`fill ${n} × 100 B (ferry sync none, sqlite synchronous OFF), s`, fp.ferry?.fill.seconds ?? null, fp.sqlite?.fill.seconds ?? null, (x) => fmt(x, 1));
  }
  const rc = r.recovery;
  if (rc.ferry || rc.sqlite) {
    const warm = (side: Side): number | null => (rc[side] ? median(rc[side]!.warm.map((x) => x.openMs)) : null);
    const fw = warm('ferry');
    pair(`open ms, ${r.backlogLabel} backlog, warm cache (median of ${rc.ferry?.warm.length ?? rc.sqlite?.warm.length})`, fw, warm('sqlite'), (x) => fmt(x, 1), `≤ ${goals.openMsMax}`, fw === null ? null : fw <= goals.openMsMax);
    const cold = (side: Side): number | null => rc[side]?.cold?.openMs ?? null;
    const fc = cold('ferry');
    pair('  open ms, cold cache (drop_caches)', fc, cold('sqlite'), (x) => fmt(x, 1), `≤ ${goals.openMsMax}`, fc === null ? null : fc <= goals.openMsMax);
    const killed = (side: Side): number | null => rc[side]?.afterKill.openMs ?? null;
    const fk = killed('ferry');
    pair('  open ms after SIGKILL mid-append (ferry: + torn tail)', fk, killed('sqlite'), (x) => fmt(x, 1), `≤ ${goals.openMsMax}`, fk === null ? null : fk <= goals.openMsMax);
    pair('  first read of 100 records after open, ms (warm)', rc.ferry ? median(rc.ferry.warm.map((x) => x.firstReadMs)) : null,
      rc.sqlite ? median(rc.sqlite.warm.map((x) => x.firstReadMs)) : null, (x) => fmt(x, 2));
    pair('  RSS MB after open (warm)', rc.ferry?.warm[0]?.memory.rssBytes ?? null, rc.sqlite?.warm[0]?.memory.rssBytes ?? null, mb);
    pair(`fill ${r.backlogLabel}, s`, rc.ferry?.fill.seconds ?? null, rc.sqlite?.fill.seconds ?? null, (x) => fmt(x, 1));
  }
  const waRow = (name: string, pick: (side: Side) => number | null): void => {
    const f = pick('ferry');
    pair(name, f, pick('sqlite'), (x) => fmt(x, 2), `≤ ${goals.writeAmplificationMax}`, f === null ? null : f <= goals.writeAmplificationMax);
  };
  for (const c of r.cells.filter((x) => x.cell.recordBytes === 100 && x.ferry.length > 0)) {
    waRow(`write amplification, ${cellName(c.cell)} (durable)`, (side) => median(c[side].map(wa)));
  }
  if (fp.ferry || fp.sqlite) waRow(`write amplification, 100 B, backlog fill`, (side) => (fp[side] ? wa(fp[side]!.fill) : null));
  return rows;
}

export function recoveryNotes(rc: Partial<Record<Side, RecoveryRuns>>): string[] {
  const out: string[] = [];
  for (const side of ['ferry', 'sqlite'] as Side[]) {
    const r = rc[side];
    if (!r) continue;
    const k = r.afterKill;
    out.push(`${side}: backlog ${fmt(r.fill.records)} records, ${mb(r.fill.storeBytes)} MB of files; warm opens ms ${r.warm.map((x) => fmt(x.openMs, 1)).join(', ')}; ` +
      `cold open: ${r.cold ? `${fmt(r.cold.openMs, 1)} ms, read ${mb(r.cold.io.read)} MB from disk` : r.coldNote}; ` +
      `after SIGKILL: lastSeq ${fmt(k.lastSeq)}${k.backlog === null ? '' : `, backlog ${fmt(k.backlog)}`}${k.recovered ? `, tail bytes cut ${k.recovered.tailBytesCut}` : ''}`);
  }
  return out;
}

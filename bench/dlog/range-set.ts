/**
 * RangeSet inserts, old (sorted array + splice) against new (AVL tree), side by side:
 * `npx tsc -p tsconfig.json && node dist/bench/dlog/range-set.js`.
 * Each cell adds N single seqs, every other one (so none merge and the set holds N ranges), in
 * ascending, descending or random order, then asks `has` for each; medians of BENCH_ROUNDS.
 * Options (env): BENCH_RANGES (default 200,000), BENCH_ROUNDS (default 3), BENCH_OLD_MAX (the old
 * set is skipped for a cell above this many ranges, default 200,000: descending costs it seconds).
 */
import { RangeSet } from '../../common/range-set.js';
import { ArrayRangeSet } from './array-range-set.js';

interface SetLike {
  add(from: number, to?: number): number;
  has(seq: number): boolean;
  readonly size: number;
}

const n = Number(process.env.BENCH_RANGES ?? 200_000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const oldMax = Number(process.env.BENCH_OLD_MAX ?? 200_000);

function orderOf(kind: string): number[] {
  const seqs = Array.from({ length: n }, (_, i) => 2 * (i + 1));
  if (kind === 'descending') seqs.reverse();
  if (kind === 'random') {
    // A fixed LCG shuffle: the same order every run.
    let x = 12345;
    for (let i = seqs.length - 1; i > 0; i--) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const j = x % (i + 1);
      [seqs[i], seqs[j]] = [seqs[j]!, seqs[i]!];
    }
  }
  return seqs;
}

function time(make: () => SetLike, seqs: number[]): { insertMs: number; hasMs: number } {
  const s = make();
  const t0 = process.hrtime.bigint();
  for (const seq of seqs) s.add(seq);
  const t1 = process.hrtime.bigint();
  let found = 0;
  for (const seq of seqs) if (s.has(seq)) found++;
  const t2 = process.hrtime.bigint();
  if (s.size !== seqs.length || found !== seqs.length) throw new Error(`wrong set: ${s.size} ranges, ${found} found`);
  return { insertMs: Number(t1 - t0) / 1e6, hasMs: Number(t2 - t1) / 1e6 };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (ms: number): string => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));

console.log(`RangeSet: ${n} single-seq ranges (every other seq), ${rounds} rounds, medians, Node ${process.version}`);
console.log('| order | old insert ms | new insert ms | old has ms | new has ms |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const kind of ['ascending', 'descending', 'random']) {
  const seqs = orderOf(kind);
  const olds: { insertMs: number; hasMs: number }[] = [];
  const news: { insertMs: number; hasMs: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    if (n <= oldMax) olds.push(time(() => new ArrayRangeSet(), seqs));
    news.push(time(() => new RangeSet(), seqs));
  }
  const cell = (xs: { insertMs: number; hasMs: number }[], k: 'insertMs' | 'hasMs'): string => (xs.length > 0 ? fmt(median(xs.map((x) => x[k]))) : 'skipped');
  console.log(`| ${kind} | ${cell(olds, 'insertMs')} | ${cell(news, 'insertMs')} | ${cell(olds, 'hasMs')} | ${cell(news, 'hasMs')} |`);
}

import t from 'tap';
import { RangeSet } from '../../common/range-set.js';
import { prng, testSeed } from '../helpers/seed.js';

/** The naive model: one boolean per seq of a small universe. */
class Model {
  readonly held: boolean[];
  constructor(readonly seqsMax: number) {
    this.held = new Array<boolean>(seqsMax + 2).fill(false);
  }
  set(from: number, to: number, v: boolean): number {
    let changed = 0;
    for (let s = Math.max(from, 0); s <= Math.min(to, this.seqsMax); s++) {
      if (this.held[s] !== v) changed++;
      this.held[s] = v;
    }
    return changed;
  }
  countIn(from: number, to: number): number {
    let n = 0;
    for (let s = Math.max(from, 0); s <= Math.min(to, this.seqsMax); s++) if (this.held[s]) n++;
    return n;
  }
  ranges(): [number, number][] {
    const out: [number, number][] = [];
    for (let s = 0; s <= this.seqsMax; s++) {
      if (!this.held[s]) continue;
      const last = out.at(-1);
      if (last && last[1] === s - 1) last[1] = s;
      else out.push([s, s]);
    }
    return out;
  }
}

t.test('range-set - random operations agree with a naive model (SEED= replays)', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const rng = prng(seed);
  const int = (n: number): number => Math.floor(rng() * n);
  for (let round = 0; round < 40; round++) {
    const seqsMax = 20 + int(400);
    const model = new Model(seqsMax);
    const set = new RangeSet();
    const log: string[] = [];
    for (let op = 0; op < 600; op++) {
      const from = 1 + int(seqsMax);
      const to = Math.min(seqsMax, from + (rng() < 0.6 ? 0 : int(rng() < 0.8 ? 4 : 60)) - (rng() < 0.05 ? 3 : 0));
      const kind = int(10);
      let got: unknown;
      let want: unknown;
      if (kind <= 3) {
        log.push(`add(${from}, ${to})`);
        got = set.add(from, to);
        want = to < from ? 0 : model.set(from, to, true);
      } else if (kind === 4) {
        log.push(`delete(${from}, ${to})`);
        got = set.delete(from, to);
        want = to < from ? 0 : model.set(from, to, false);
      } else if (kind === 5) {
        got = set.has(from);
        want = model.held[from];
      } else if (kind === 6) {
        got = set.countIn(from, to);
        want = to < from ? 0 : model.countIn(from, to);
      } else if (kind === 7) {
        log.push(`takePrefix(${from})`);
        got = set.takePrefix(from);
        const first = model.ranges()[0];
        want = first && first[0] <= from ? first[1] : null;
        if (first && first[0] <= from) model.set(first[0], first[1], false);
      } else if (kind === 8 && rng() < 0.3) {
        const seq = int(seqsMax / 4);
        log.push(`dropThrough(${seq})`);
        got = set.dropThrough(seq);
        want = model.set(0, seq, false);
      } else {
        const rangesMax = rng() < 0.5 ? Infinity : int(5);
        got = set.toArray(rangesMax);
        want = model.ranges().slice(0, rangesMax);
      }
      const ranges = model.ranges();
      const state = { size: set.size, last: set.last, ranges: set.toArray() };
      const modelState = { size: ranges.length, last: ranges.at(-1)?.[1] ?? 0, ranges };
      if (JSON.stringify(got) !== JSON.stringify(want) || JSON.stringify(state) !== JSON.stringify(modelState)) {
        t.fail(`round ${round}, op ${op}: got ${JSON.stringify(got)}, model ${JSON.stringify(want)}`, {
          state, modelState, lastOps: log.slice(-10),
        });
        return;
      }
    }
  }
  t.pass('every operation agreed');
});

t.test('range-set - the constructor merges overlapping and touching ranges given in any order', async (t) => {
  const s = new RangeSet([[10, 12], [1, 3], [4, 4], [11, 20], [30, 30]]);
  t.same(s.toArray(), [[1, 4], [10, 20], [30, 30]]);
  t.equal(s.size, 3);
  t.equal(s.last, 30);
});

t.test('range-set - every other seq inserted descending, then filled in: one range, and every operation answers', async (t) => {
  const n = 20_000;
  const s = new RangeSet();
  let added = 0;
  for (let seq = 2 * n; seq > 0; seq -= 2) added += s.add(seq);
  t.equal(added, n);
  t.equal(s.size, n);
  t.ok(s.has(2) && !s.has(3) && s.has(2 * n));
  for (let seq = 1; seq < 2 * n; seq += 2) s.add(seq);
  t.same(s.toArray(), [[1, 2 * n]]);
  t.equal(s.dropThrough(n), n);
  t.equal(s.takePrefix(n + 1), 2 * n);
  t.equal(s.size, 0);
  t.equal(s.last, 0);
});

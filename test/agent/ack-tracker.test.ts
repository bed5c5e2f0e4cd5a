import t from 'tap';
import { AckTracker } from '../../agent/store/ack-tracker.js';
import { prng, testSeed } from '../helpers/seed.js';

t.test('ack tracker - matches a plain set of done seqs under random acks, drops and cumulative acks', async (t) => {
  const seed = testSeed((m) => t.comment(m));
  const rnd = prng(seed);
  const seqMax = 500;
  for (let round = 0; round < 200; round++) {
    const a = new AckTracker();
    const model = new Set<number>();
    let wrong = '';
    for (let op = 0; op < 60 && !wrong; op++) {
      const x = 1 + Math.floor(rnd() * seqMax);
      const y = Math.min(seqMax, x + Math.floor(rnd() * 20));
      const before = model.size;
      let newly: number;
      if (rnd() < 0.2) {
        newly = a.doneThrough(x);
        for (let s = 1; s <= x; s++) model.add(s);
      } else {
        newly = a.markDone(x, y);
        for (let s = x; s <= y; s++) model.add(s);
      }
      if (newly !== model.size - before) wrong = `op ${op}: reported ${newly} newly done, the model ${model.size - before}`;
      let cumulative = 0;
      while (model.has(cumulative + 1)) cumulative++;
      if (a.ackedSeq !== cumulative) wrong = `op ${op}: ackedSeq ${a.ackedSeq}, the model ${cumulative}`;
      const probe = 1 + Math.floor(rnd() * seqMax);
      if (a.isDone(probe) !== model.has(probe)) wrong = `op ${op}: isDone(${probe}) disagrees`;
      const lo = 1 + Math.floor(rnd() * seqMax);
      const hi = lo + Math.floor(rnd() * 50);
      let count = 0;
      for (let s = lo; s <= hi; s++) if (model.has(s)) count++;
      if (a.countDoneIn(lo, hi) !== count) wrong = `op ${op}: countDoneIn(${lo}, ${hi}) ${a.countDoneIn(lo, hi)}, the model ${count}`;
    }
    if (wrong) {
      t.fail(`round ${round}: ${wrong} (SEED=${seed})`);
      return;
    }
  }
  t.pass('200 rounds of 60 operations agree with the model');
});

t.test('ack tracker - a restored state keeps its ranges and absorbs those that follow the cumulative point', async (t) => {
  const a = new AckTracker(10, [[11, 12], [20, 22]]);
  t.equal(a.ackedSeq, 12, 'the range right after the cumulative point is absorbed');
  t.same(a.ranges(10), [[20, 22]]);
  t.ok(a.isDone(21) && !a.isDone(13), 'membership');
  t.same(a.ranges(0), [], 'rangesMax bounds what is written');
});

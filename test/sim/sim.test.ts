/**
 * The whole-system simulator in CI: a run of random seeds (500 here and 500 in sim-seeds.test.ts;
 * SIMS=N for more, SEED=S for the base, printed either way) with every fault kind that no unfixed bug needs left out
 * (regressions.ts), the regression seeds (still failing as found while their bug is open,
 * passing once it is marked fixed), and determinism (one seed, one trace).
 */
import t from 'tap';
import { classify } from './classify.js';
import { ciRunOptions, knownBugs, regressions } from './regressions.js';
import { runSeed } from './world.js';
import { runRandomSeeds } from './ci-seeds.js';

t.test('sim - one seed gives one trace: two runs of a seed have the same hash, another seed another', async (t) => {
  const opts = ciRunOptions();
  const a = await runSeed({ seed: 4242, ...opts });
  const b = await runSeed({ seed: 4242, ...opts });
  const c = await runSeed({ seed: 4243, ...opts });
  t.ok(a.events > 300, `the run did something (${a.events} events)`);
  t.equal(b.hash, a.hash, 'same seed, same trace hash');
  t.equal(b.events, a.events, 'same number of events');
  t.not(c.hash, a.hash, 'another seed, another trace');
});

t.test('sim - regression seeds: failing as found while their bug is open, passing once it is fixed', async (t) => {
  for (const r of regressions) {
    const res = await runSeed({ seed: r.seed, faults: r.faults, precreateFiles: r.precreateFiles ?? false, diskFaultsOn: r.diskFaultsOn ?? 'any', longpoll: r.longpoll ?? false, downlink: r.downlink ?? false });
    const replay = `npm run sim -- --from ${r.seed} --seeds 1 --verbose --faults ${r.faults.join(',')}${r.precreateFiles ? ' --precreate' : ''}${r.diskFaultsOn ? ` --disk-faults-on ${r.diskFaultsOn}` : ''}${r.longpoll ? '' : ' --tcp-only'}${r.downlink ? '' : ' --no-downlink'}`;
    if (knownBugs[r.bug].fixed) {
      t.ok(res.ok, `seed ${r.seed} (${r.bug}, fixed) passes${res.ok ? '' : `: ${res.violation!.message}; replay: ${replay}`}`);
    } else {
      t.equal(classify(res), r.bug, `seed ${r.seed} still shows ${r.bug} (open): ${res.violation?.message.slice(0, 160) ?? 'it passed: if the bug is fixed, set knownBugs.fixed'}; replay: ${replay}`);
    }
  }
});

// Half of CI's 1,000 random seeds; sim-seeds.test.ts runs the other half (two files: tap runs them side by side, each within its time-out).
t.test('sim - 350 seeds: no checker fails with the fault kinds whose bugs are fixed', (t) => runRandomSeeds(t, 350));

/** The other half of CI's random simulator seeds (sim.test.ts runs the first half, the regressions and determinism). */
import t from 'tap';
import { runRandomSeeds } from './ci-seeds.js';

t.test('sim - 350 more seeds: no checker fails with the fault kinds whose bugs are fixed', (t) => runRandomSeeds(t, 350));

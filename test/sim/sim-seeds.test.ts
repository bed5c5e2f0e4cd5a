/** The second half of CI's run of seeds (seed-run.ts); the first half, the regressions and determinism are in sim.test.ts. */
import t from 'tap';
import { seedRun } from './seed-run.js';

t.test('sim - seeds, second half: no checker fails with the fault kinds whose bugs are fixed', (t) => seedRun(t, 1));

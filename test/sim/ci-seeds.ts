/** CI's run of random seeds (sim.test.ts, sim-seeds.test.ts): SIMS=N seeds (default `countDefault`) from SEED=S (default random, printed). */
import type { Test } from 'tap';
import { ciRunOptions } from './regressions.js';
import { runSeed } from './world.js';

export async function runRandomSeeds(t: Test, countDefault: number): Promise<void> {
  const count = Number(process.env.SIMS ?? countDefault);
  const base = process.env.SEED !== undefined ? Number(process.env.SEED) : Math.floor(Math.random() * (0xffffffff - count));
  const opts = ciRunOptions();
  t.comment(`SEED=${base} SIMS=${count}; faults: ${opts.faults!.join(',')}${opts.precreateFiles ? '; gateway files created at install' : ''}`);
  let failed = 0;
  let events = 0;
  for (let i = 0; i < count; i++) {
    const seed = (base + i) >>> 0;
    const r = await runSeed({ seed, ...opts });
    events += r.events;
    if (!r.ok) {
      failed++;
      const skips = (opts.skipCheckers ?? []).map((c) => ` --skip-checker ${c}`).join('');
      t.fail(`seed ${seed}: ${r.violation!.message} (hash ${r.hash}); replay: npm run sim -- --from ${seed} --seeds 1 --verbose --faults ${opts.faults!.join(',')}${opts.precreateFiles ? ' --precreate' : ''}${skips}${opts.downlink ? '' : ' --no-downlink'}`);
      if (failed >= 5) break;
    }
  }
  t.equal(failed, 0, `${count} seeds from ${base} (${events} events): none failed`);
}

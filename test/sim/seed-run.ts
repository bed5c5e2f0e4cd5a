/**
 * CI's run of seeds, in two halves (sim.test.ts and sim-seeds.test.ts run one each, in parallel):
 * SIMS seeds in all (1,000 by default) from SEED (random if unset, printed), each half a
 * contiguous range, with every fault kind that no unfixed bug needs left out (regressions.ts).
 */
import type { Test } from 'tap';
import { ciRunOptions } from './regressions.js';
import { runSeed } from './world.js';

/** Runs half `half` (0 or 1) of the seeds; stops after 5 failures. */
export async function seedRun(t: Test, half: 0 | 1): Promise<void> {
  const total = Number(process.env.SIMS ?? 1000);
  const first = Math.ceil(total / 2);
  const count = half === 0 ? first : total - first;
  // Both halves take the same base from SEED; without it each half picks its own.
  const base = process.env.SEED !== undefined ? Number(process.env.SEED) : Math.floor(Math.random() * (0xffffffff - total));
  const from = (base + (half === 0 ? 0 : first)) >>> 0;
  const opts = ciRunOptions();
  t.comment(`SEED=${base} SIMS=${total}, half ${half + 1} of 2: seeds ${from}..${(from + count - 1) >>> 0}; faults: ${opts.faults!.join(',')}${opts.precreateFiles ? '; gateway files created at install' : ''}${opts.downlink ? '; downlink on' : ''}`);
  let failed = 0;
  let events = 0;
  for (let i = 0; i < count; i++) {
    const seed = (from + i) >>> 0;
    const r = await runSeed({ seed, ...opts });
    events += r.events;
    if (!r.ok) {
      failed++;
      const skips = (opts.skipCheckers ?? []).map((c) => ` --skip-checker ${c}`).join('');
      t.fail(`seed ${seed}: ${r.violation!.message} (hash ${r.hash}); replay: npm run sim -- --from ${seed} --seeds 1 --verbose --faults ${opts.faults!.join(',')}${opts.precreateFiles ? ' --precreate' : ''}${skips}${opts.downlink ? '' : ' --no-downlink'}`);
      if (failed >= 5) break;
    }
  }
  t.equal(failed, 0, `${count} seeds from ${from} (${events} events): none failed`);
}

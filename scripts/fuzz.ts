/**
 * `npm run fuzz`: runs the frame decoder's fuzz properties (test/protocol/fuzz-properties.ts, the
 * same ones test/protocol/fuzz.test.ts runs briefly in CI) for a long time, outside CI.
 * Rounds go through every property, each round with the next seed, until the time is up.
 * Options (env):
 * - FUZZ_MS: how long to run, default 60000 (e.g. FUZZ_MS=600000 for ten minutes);
 * - SEED: the first batch's seed (later batches count up from it), random by default;
 * - FUZZ_BATCH: cases per round across all properties (each property runs its share), default 5000;
 * - FUZZ_ONLY: run only the properties whose name contains this text.
 * A failure prints fast-check's report and how to replay it, and exits 1.
 */
import fc from 'fast-check';
import { formatTally, fuzzProperties, runsFor } from '../test/protocol/fuzz-properties.js';

const say = (line = ''): void => void process.stdout.write(`${line}\n`);

function intFromEnv(name: string, fallback: number, min: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`${name} must be an integer of at least ${min}, got ${JSON.stringify(text)}`);
  return n;
}

function main(): number {
  const fuzzMs = intFromEnv('FUZZ_MS', 60_000, 1);
  const batch = intFromEnv('FUZZ_BATCH', 5000, 1);
  const firstSeed = intFromEnv('SEED', Math.floor(Math.random() * 2 ** 32), -(2 ** 31)) | 0;
  const only = process.env.FUZZ_ONLY ?? '';
  const properties = fuzzProperties().filter((p) => p.name.includes(only));
  if (properties.length === 0) throw new Error(`FUZZ_ONLY=${JSON.stringify(only)} matches no property`);
  const cases = properties.map(() => 0);
  const started = Date.now();
  const deadline = started + fuzzMs;
  say(`ferry fuzz: ${properties.length} properties for ${fuzzMs} ms, rounds of ${batch} cases, first seed ${firstSeed} (replay with SEED=${firstSeed})`);

  let seed = firstSeed;
  let reported = started;
  for (let round = 0; Date.now() < deadline; round++, seed = (seed + 1) | 0) {
    for (const [i, p] of properties.entries()) {
      if (Date.now() >= deadline) break;
      const numRuns = runsFor(p, batch);
      const details = fc.check(p.property, { seed, numRuns });
      cases[i]! += details.numRuns;
      if (details.failed) {
        say(`FAILED: ${p.name}, round seed ${seed}`);
        say(fc.defaultReportMessage(details) ?? 'failed');
        const err = details.errorInstance;
        say(`error: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
        say(`replay: SEED=${seed} NUM_RUNS=${batch} npx tap test/protocol/fuzz.test.ts (or SEED=${seed} FUZZ_BATCH=${batch} FUZZ_ONLY=${JSON.stringify(p.name)} npm run fuzz)`);
        return 1;
      }
    }
    if (Date.now() - reported >= 10_000) {
      reported = Date.now();
      say(`round ${round} (seed ${seed}): ${cases.reduce((a, b) => a + b, 0)} cases in ${((reported - started) / 1000).toFixed(0)} s`);
    }
  }

  say();
  for (const [i, p] of properties.entries()) say(`${p.name}: ${cases[i]} cases; outcomes: ${formatTally(p.tally)}`);
  say(`ok: ${cases.reduce((a, b) => a + b, 0)} cases in ${((Date.now() - started) / 1000).toFixed(1)} s, no failure`);
  return 0;
}

process.exitCode = main();

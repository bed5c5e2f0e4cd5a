/**
 * Fuzzes the frame decoder with fast-check (the properties are in fuzz-properties.ts, shared with
 * `npm run fuzz`, which runs them for minutes instead). Prints its seed; replay a run with
 * `SEED=<n> npx tap test/protocol/fuzz.test.ts`. NUM_RUNS=<n> sets the total number of cases
 * across all properties (default 100,000), split by each property's share.
 */
import t from 'tap';
import fc from 'fast-check';
import { ErrorCode } from '../../protocol/errors.js';
import { checkData, type PacketData } from '../../protocol/packet.js';
import { testSeed } from '../helpers/seed.js';
import { formatTally, fuzzProperties, runsFor } from './fuzz-properties.js';

const numRunsDefault = 100_000;

function numRunsFromEnv(text: string | undefined): number {
  if (text === undefined || text === '') return numRunsDefault;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`NUM_RUNS must be a positive integer, got ${JSON.stringify(text)}`);
  return n;
}

const seed = testSeed((msg) => t.comment(`fuzz ${msg}`));
const total = numRunsFromEnv(process.env.NUM_RUNS);
/** Seeds that once failed, run every time (none yet). */
const regressionSeeds: number[] = [];

for (const p of fuzzProperties()) {
  t.test(p.name, async (t) => {
    const numRuns = runsFor(p, total);
    for (const s of [seed, ...regressionSeeds]) {
      try {
        fc.assert(p.property, { seed: s | 0, numRuns });
      } catch (err) {
        const cause = (err as Error).cause;
        t.fail(`seed ${s} (replay with SEED=${s}): ${(err as Error).message}${cause instanceof Error ? `\n${cause.stack ?? cause.message}` : ''}`);
        continue;
      }
      t.pass(`seed ${s}: ${numRuns} cases hold`);
    }
    t.comment(`outcomes: ${formatTally(p.tally)}`);
  });
}

// Found by the round-trip property with "__proto__" among the data keys: cbor-x's decoder renames
// the key to "__proto_" (its prototype-pollution guard), and the agent's store uses cbor-x too, so
// such data is refused where packets are admitted (checkData) rather than fixed in the codec.
t.test('decoder - packet data with a "__proto__" key is refused at admission with DATA_INVALID', async (t) => {
  const data = JSON.parse('{"a": [{"__proto__": {"x": 1}}]}') as PacketData;
  t.throws(() => checkData(data, 1 << 20), { code: ErrorCode.DATA_INVALID });
  t.doesNotThrow(() => checkData(JSON.parse('{"a": [{"proto": {"x": 1}}]}') as PacketData, 1 << 20), 'other keys pass');
});

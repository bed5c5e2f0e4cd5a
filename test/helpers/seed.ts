/** Seeded randomness for tests: every randomized test prints its seed and replays with SEED=. */

/** mulberry32: a small, fast seeded PRNG giving numbers in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed from SEED=, else a random one; printed through `comment` so a failure can be replayed. */
export function testSeed(comment: (msg: string) => void): number {
  const text = process.env.SEED;
  const seed = text === undefined || text === '' ? Math.floor(Math.random() * 2 ** 32) : Number(text);
  if (!Number.isSafeInteger(seed)) throw new Error(`SEED must be an integer, got ${JSON.stringify(text)}`);
  comment(`seed ${seed} (replay with SEED=${seed})`);
  return seed;
}

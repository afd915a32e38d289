/**
 * Deterministic token sequences for engine-vs-reference tests. Lengths are chosen by callers so
 * that none is a multiple of the engine's block sizes (a 1-token sequence included).
 */

/** mulberry32: a tiny seeded PRNG, so fixtures are the same on every run and machine. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One sequence per length, token ids uniform in [0, vocab). */
export function randomSequences(lengths: readonly number[], vocab: number, seed = 7): number[][] {
  const next = mulberry32(seed);
  return lengths.map((n) => Array.from({ length: n }, () => Math.floor(next() * vocab)));
}

/**
 * mulberry32 (Tommy Ettinger): the one seeded PRNG of the package — calibration samples,
 * generated checkpoints, benchmark weights and test fixtures all draw from it, so the same seed
 * gives the same bytes on every machine and Node version (Math.random cannot be seeded).
 */

/** Uniform 32-bit unsigned integers. */
export function mulberry32U32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  const next = mulberry32U32(seed);
  return () => next() / 4294967296;
}

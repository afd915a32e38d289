/**
 * Deterministic token sequences for engine-vs-reference tests. Lengths are chosen by callers so
 * that none is a multiple of the engine's block sizes (a 1-token sequence included).
 */

// Token ids only: the PRNG is not under test, so the reference may share the package's.
import { mulberry32 } from '../../lib/util/prng';

/** One sequence per length, token ids uniform in [0, vocab). */
export function randomSequences(lengths: readonly number[], vocab: number, seed = 7): number[][] {
  const next = mulberry32(seed);
  return lengths.map((n) => Array.from({ length: n }, () => Math.floor(next() * vocab)));
}

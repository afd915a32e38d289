/**
 * The float64 reference must reproduce ../shared/golden/stories260k.json (computed by another
 * independent float64 implementation) before anything is compared against it. Both are float64
 * runs of the same formulas, so only summation order separates them: measured differences are
 * below 6e-15 (statistics) and 2.3e-14 relative (perplexities, logits checksum); the limit is
 * 1e-12.
 */
import { stories260kDir } from '../helpers/paths';
import { referencePerplexity, referenceScores } from './forward64';
import { loadGolden, loadGoldenTokens } from '../helpers/golden';


/** Absolute for the O(1) statistics, relative for perplexity and the checksum. */
const TOL = 1e-12;

const golden = loadGolden();
const sequences = loadGoldenTokens();

describe('float64 reference vs golden stories260k values', () => {
  test('per-layer BI, angular distance and relative magnitude', () => {
    const scores = referenceScores(stories260kDir, sequences);
    expect(scores).toHaveLength(golden.layers.length);
    for (const g of golden.layers) {
      const s = scores[g.layer];
      expect(s.tokens).toBe(golden.tokensCount);
      expect(Math.abs(s.blockInfluence - g.bi)).toBeLessThan(TOL);
      expect(Math.abs(s.angularDistance - g.angular)).toBeLessThan(TOL);
      expect(Math.abs(s.relativeMagnitude - g.relmag)).toBeLessThan(TOL);
    }
  });

  test('perplexity and logits checksum', () => {
    const ppl = referencePerplexity(stories260kDir, sequences);
    expect(ppl.predictions).toBe(golden.predictedCount);
    expect(Math.abs(ppl.perplexity / golden.perplexity - 1)).toBeLessThan(TOL);
    expect(Math.abs(ppl.logitsSum / golden.logitsSum - 1)).toBeLessThan(TOL);
  });

  // Layers before the first skipped one come from the memoised full pass, so each entry costs
  // only the layers after it.
  test.each(Object.entries(golden.perplexitySkipping))('perplexity skipping layers %s', (layers, expected) => {
    const skip = layers.split(',').map(Number);
    const ppl = referencePerplexity(stories260kDir, sequences, skip);
    expect(Math.abs(ppl.perplexity / expected - 1)).toBeLessThan(TOL);
  });
});

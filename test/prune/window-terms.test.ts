/**
 * A NaN/Inf position is reported in windows of the whole pass, with the batch named by the data
 * it came from: calibration for scoring, the --eval or --data data for perplexity.
 */
import { ShortGptError } from '../../lib/errors';
import { inWindowTerms, perplexityBatchNoun, type Batch } from '../../lib/prune/strategies/passes';

const batches = [[{}, {}, {}], [{}, {}]] as unknown as Batch[];
const nonfinite = () => new ShortGptError('ERR_NONFINITE_ACTIVATION', 'layer 2: non-finite at sequence 1, position 4');

it('names the batch by phase: calibration when scoring, --eval data or data for perplexity', () => {
  expect((inWindowTerms(nonfinite(), batches, 1) as Error).message).toBe('layer 2: non-finite at window 4 (sequence 1 of calibration batch 2 of 2), position 4');
  for (const [phase, noun] of [['eval-before', '--eval data batch'], ['eval-after', '--eval data batch'], ['eval', 'data batch']] as const) {
    expect(perplexityBatchNoun(phase)).toBe(noun);
    expect((inWindowTerms(nonfinite(), batches, 1, perplexityBatchNoun(phase)) as Error).message).toBe(`layer 2: non-finite at window 4 (sequence 1 of ${noun} 2 of 2), position 4`);
  }
});

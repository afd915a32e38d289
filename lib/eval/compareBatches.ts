/**
 * A comparison over batches of windows (--batch-tokens bounds each session's memory): per batch,
 * the reference's final residual stream, then the candidate and the divergence pass, summed into
 * one ComparisonAccumulator. Progress is in token-layers: the reference's layers are `phase`,
 * the candidate's `candidatePhase` when given (prune's 'eval-before' and 'eval-after'), else
 * `phase` too. With several batches the two alternate, and a job tracker counts a phase as done
 * from the first event of the next and drops its later events: the job's fraction then runs
 * ahead during the later batches' reference runs (it never goes back). Running every reference
 * first would need every batch's final residual stream at once.
 */
import type { Checkpoint } from '../checkpoint/types';
import { ShortGptError } from '../errors';
import { inWindowTerms, WorkTracker, type Batch, type BatchedPerplexity, type PassOptions } from '../prune/strategies/passes';
import { checkSkipLayers } from '../engine/forwardKept';
import { checkComparable, compareInto, type ComparisonResult } from './compare';
import { ComparisonAccumulator } from './compareStats';

export interface CompareBatchesOptions extends PassOptions {
  /** Candidate layers skipped at run time. */
  skipLayers?: number[];
  referenceSkipLayers?: number[];
  /** The progress phase (default 'eval'). */
  phase?: string;
  /** The candidate's phase when there is one batch (default: `phase`). */
  candidatePhase?: string;
}

export async function compareBatches(candidate: Checkpoint, reference: Checkpoint, batches: readonly Batch[], opts: CompareBatchesOptions = {}): Promise<ComparisonResult> {
  checkComparable(candidate, reference);
  const skip = checkSkipLayers(candidate, opts.skipLayers, 'skip');
  const refSkip = checkSkipLayers(reference, opts.referenceSkipLayers, 'reference skip');
  if (!batches.some((b) => b.some((s) => s.length >= 2))) {
    throw new ShortGptError('ERR_TOO_SHORT', 'a comparison needs at least one window of 2 or more tokens');
  }
  const runOf = (ckpt: Checkpoint, s: readonly number[]) => Array.from({ length: ckpt.config.numHiddenLayers }, (_, l) => l).filter((l) => !s.includes(l));
  const refRun = runOf(reference, refSkip);
  const candRun = runOf(candidate, skip);
  const phase = opts.phase ?? 'eval';
  const layers = candidate.config.numHiddenLayers;
  const split = opts.candidatePhase !== undefined && opts.candidatePhase !== phase;
  const refTracker = new WorkTracker(batches, split ? refRun.length : refRun.length + candRun.length, { phase, layers }, opts.onProgress);
  const candTracker = split ? new WorkTracker(batches, candRun.length, { phase: opts.candidatePhase as string, layers }, opts.onProgress) : refTracker;
  const acc = new ComparisonAccumulator();
  refTracker.start(refRun[0] ?? 0);
  for (let b = 0; b < batches.length; b++) {
    await compareInto(acc, candidate, reference, batches[b], skip, refSkip, {
      ...opts.engine,
      signal: opts.signal,
      onProgress: opts.onProgress
        ? (p) => {
          if (p.model === 'reference') refTracker.callback(b, p.layer, refRun.indexOf(p.layer))?.(p.sequencesDone);
          else candTracker.callback(b, p.layer, (split ? 0 : refRun.length) + candRun.indexOf(p.layer))?.(p.sequencesDone);
        }
        : undefined,
    }).catch((e: unknown) => {
      throw inWindowTerms(e, batches, b, 'data batch');
    });
  }
  if (split) refTracker.finish(refRun[refRun.length - 1] ?? 0);
  candTracker.finish(candRun[candRun.length - 1] ?? 0);
  return { reference: reference.dir, candidate: candidate.dir, skipLayers: skip, referenceSkipLayers: refSkip, ...acc.result() };
}

/** One side of a comparison in the shape perplexityBatches returns (the same numbers, bit for bit). */
export function comparisonPerplexity(r: ComparisonResult, side: 'reference' | 'candidate'): BatchedPerplexity {
  return {
    perplexity: r.perplexity[side], meanNll: r.meanNll[side], predictions: r.predictions, tokens: r.tokens,
    skipLayers: side === 'reference' ? r.referenceSkipLayers : r.skipLayers,
  };
}

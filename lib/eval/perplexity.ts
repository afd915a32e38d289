/**
 * Perplexity of a checkpoint on token sequences: exp(mean next-token negative log-likelihood),
 * each sequence of length T predicting T-1 tokens. Layers in `skipLayers` are skipped at run
 * time (the residual stream passes through unchanged), which equals evaluating the checkpoint
 * rewritten without them.
 */
import type { Checkpoint } from '../checkpoint/types';
import { checkSkipLayers, forwardKeptLayers } from '../engine/forwardKept';
import { finalNormRef, lmHeadRef, nativeModelSpec } from '../engine/modelSpec';
import { engineOptionsOf, type EngineOptions } from '../engine/engineOptions';
import { EngineSession, type TokenSequences } from '../engine/session';
import { ShortGptError } from '../errors';
import { resolveCheckpoint } from '../scoring/scoreLayers';

/** Options of {@link perplexity}: layers to skip, the engine fields, progress and cancellation. */
export interface PerplexityOptions extends EngineOptions {
  /** Layers to skip at run time (0-based): the same as evaluating the model rewritten without them. */
  skipLayers?: number[];
  /** Cancels between batches of sequences; the promise rejects with code ERR_ABORTED. */
  signal?: AbortSignal;
  /** Called after each batch of sequences of each layer that runs. */
  onProgress?: (p: { layer: number; sequencesDone: number; sequencesTotal: number }) => void;
}

/** What {@link perplexity} returns. */
export interface PerplexityResult {
  /** exp(meanNll). */
  perplexity: number;
  /** Mean next-token negative log-likelihood, in nats. */
  meanNll: number;
  /** Next-token predictions scored: the sum over sequences of (length - 1). */
  predictions: number;
  /** Tokens run through the model. */
  tokens: number;
  /** The sum of every final logit of every position (a checksum). */
  logitsSum: number;
  /** The layers skipped, ascending, without duplicates. */
  skipLayers: number[];
}

/**
 * Perplexity of `model` on token sequences: exp of the mean next-token negative log-likelihood,
 * a sequence of T tokens predicting T-1. With `skipLayers`, those layers are skipped at run time,
 * which gives the pruned model's perplexity without writing it.
 *
 * @example
 * const before = await perplexity(dir, sequences);
 * const after = await perplexity(dir, sequences, { skipLayers: [3] });
 * console.log(before.perplexity, after.perplexity);
 */
export async function perplexity(model: Checkpoint | string, sequences: TokenSequences, options: PerplexityOptions = {}): Promise<PerplexityResult> {
  const ckpt = await resolveCheckpoint(model);
  const skip = checkSkipLayers(ckpt, options.skipLayers, 'skip');
  if (!sequences.some((s) => s.length >= 2)) {
    throw new ShortGptError('ERR_TOO_SHORT', 'perplexity needs at least one sequence of 2 or more tokens (a sequence of length T predicts T-1 tokens)');
  }
  const session = EngineSession.create(nativeModelSpec(ckpt.config), sequences, engineOptionsOf(options));
  try {
    const { signal, onProgress } = options;
    await forwardKeptLayers(session, ckpt, skip, { signal, onProgress });
    const r = await session.nll(finalNormRef(ckpt), lmHeadRef(ckpt), { signal });
    const meanNll = r.sumNll / r.predictions;
    // The engine refuses NaN/Inf logits itself (ERR_NONFINITE_LOGITS, naming the position);
    // this is the last guard, so no report ever prints "perplexity NaN".
    if (!Number.isFinite(meanNll) || !Number.isFinite(r.logitsSum)) {
      throw new ShortGptError('ERR_NONFINITE_LOGITS', `perplexity of ${ckpt.dir}: the mean negative log-likelihood is ${meanNll} and the logit sum ${r.logitsSum}; the weights give non-finite logits`);
    }
    return { perplexity: Math.exp(meanNll), meanNll, predictions: r.predictions, tokens: session.totalTokens, logitsSum: r.logitsSum, skipLayers: skip };
  } finally {
    await session.dispose();
  }
}

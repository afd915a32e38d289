/**
 * prune's --bootstrap: the window bootstrap of lib/scoring/bootstrap.ts applied to the scores
 * the strategy ranked. The chosen-again probability is the one-shot rule's (the N lowest of the
 * resampled scores), which is what one-shot chose; iterative re-scores the shortened model and
 * block ranks by last-token distances, neither of which a resample of the first pass's sums
 * reproduces, so for them only the per-layer intervals are given (and the report says so).
 */
import { ShortGptError } from '../errors';
import type { BootstrapReport, Metric, Strategy } from '../report/types';
import { bootstrapScores } from '../scoring/bootstrap';
import type { LayerScore } from '../scoring/scoreLayers';
import type { RemovalRequest } from './choose';

/** Refuses a bad count, or the CUDA backend (no per-window sums), before any pass runs. */
export function checkBootstrapOptions(samples: number | undefined, seed: number | undefined, device: string | undefined): void {
  if (samples === undefined) return;
  if (!Number.isSafeInteger(samples) || samples < 1) {
    throw new ShortGptError('ERR_BOOTSTRAP', `bootstrap must be a positive integer number of resamples, got ${samples}`);
  }
  if (seed !== undefined && (!Number.isSafeInteger(seed) || seed < 0)) {
    throw new ShortGptError('ERR_BOOTSTRAP', `bootstrap seed must be a non-negative integer, got ${seed}`);
  }
  if (device === 'cuda') {
    throw new ShortGptError('ERR_BOOTSTRAP', 'bootstrap needs per-window sums, which the CUDA backend does not keep; score on the CPU backend (device cpu)');
  }
}

export function pruneBootstrap(
  scores: readonly LayerScore[],
  options: RemovalRequest & { bootstrap?: number; bootstrapSeed?: number },
  metric: Metric,
  strategy: Strategy,
): BootstrapReport {
  const oneShot = strategy === 'one-shot';
  const request: RemovalRequest = { remove: options.remove, ratio: options.ratio, keepFirst: options.keepFirst, keepLast: options.keepLast };
  const result = bootstrapScores(scores, { samples: options.bootstrap as number, seed: options.bootstrapSeed ?? 0, metric, request: oneShot ? request : undefined });
  return oneShot
    ? result
    : { ...result, note: `Strategy ${strategy} does not choose from these scores alone (${strategy === 'iterative' ? 're-scoring after each removal' : 'last-token distances of contiguous blocks'}), so no chosen-again probability is given; the intervals show how firmly the first pass ranks the layers.` };
}

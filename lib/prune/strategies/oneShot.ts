/**
 * One-shot (ShortGPT, Men et al. 2024 §4): score every layer once on the full model and delete
 * the N lowest-scored layers together. The choice itself lives in ../choose.ts (chooseLayers),
 * shared with the library; this adapter gives it the common strategy result shape.
 */
import type { Metric, MetricScores } from '../../report/types';
import { chooseLayers, type RemovalRequest } from '../choose';
import type { StrategyResult } from './types';

export function oneShot(scores: readonly MetricScores[], metric: Metric, request: RemovalRequest): StrategyResult {
  const choice = chooseLayers(scores, { ...request, metric });
  return { removed: choice.removed, reasons: choice.reasons };
}

/**
 * prune with a quality bound: which cuts are candidates (the strategy's order), measuring their
 * curve (qualityBoundSweep.ts) and turning the chosen count into the strategy's usual result.
 * One-shot's cuts are nested (the k lowest-scored layers); block's are the best block of each
 * length k (from the same last-token states, not nested): both come from one scoring pass.
 * Iterative would need a re-scoring pass per candidate count: refused (ERR_BOUND_STRATEGY)
 * rather than approximated, as is block from merged --scores (no last-token states).
 */
import type { Checkpoint } from '../checkpoint/types';
import { ShortGptError } from '../errors';
import { toMetricScores } from '../report/buildReport';
import type { Metric, Strategy } from '../report/types';
import type { LayerScore } from '../scoring/scoreLayers';
import { byScore, type RemovalRequest, type ResolvedRequest } from './choose';
import { checkBounds, curveTable, describeBounds, type QualityBounds, type QualityCurve } from './qualityBound';
import { measureCurve } from './qualityBoundSweep';
import { oneShot } from './strategies/oneShot';
import type { Batch, PassOptions } from './strategies/passes';
import type { StrategyResult } from './strategies/types';
import { chooseBlock } from './strategies/block';
import type { NativeLastTokenStates } from '../../binding';

/** Refuses what a bounded prune cannot do, before any data is read. */
export function checkBoundOptions(bounds: QualityBounds, strategy: Strategy, hasEval: boolean, device?: 'cpu' | 'cuda', fromScores = false): void {
  checkBounds(bounds);
  if (device === 'cuda') {
    throw new ShortGptError('ERR_BOUND_OPTIONS', `a quality bound (${describeBounds(bounds)}) needs --device cpu: the CUDA backend has no divergence pass yet`);
  }
  if (strategy === 'iterative') {
    throw new ShortGptError('ERR_BOUND_STRATEGY', `a quality bound (${describeBounds(bounds)}) chooses the cut with --strategy one-shot or block: iterative would need its own scoring pass for every candidate count`);
  }
  if (strategy === 'block' && fromScores) {
    throw new ShortGptError('ERR_BOUND_STRATEGY', `a quality bound with --strategy block needs the last-token states of a scoring pass (--calib DATA), not merged --scores`);
  }
  if (!hasEval) {
    throw new ShortGptError('ERR_BOUND_NEEDS_EVAL', `a quality bound (${describeBounds(bounds)}) is measured on held-out data: give --eval DATA`);
  }
}

/**
 * The removal request of a bounded prune: --remove / --ratio, when given, is the largest count
 * considered; otherwise every count up to all eligible layers but one.
 */
export function boundedRequest(numLayers: number, options: RemovalRequest): RemovalRequest {
  if (options.remove !== undefined || options.ratio !== undefined) return options;
  const free = numLayers - (options.keepFirst ?? 0) - (options.keepLast ?? 0);
  return { ...options, remove: Math.max(1, Math.min(free, numLayers - 1)) };
}

/** The candidate cuts: the first k layers in one-shot's order, k = 1..req.count. */
export function oneShotCuts(scores: readonly LayerScore[], metric: Metric, req: ResolvedRequest): number[][] {
  const ms = scores.map(toMetricScores);
  const order = [...req.eligible].sort(byScore((l) => ms[l][metric]));
  return Array.from({ length: req.count }, (_, k) => order.slice(0, k + 1));
}

/**
 * Measures the curve on `batches` (the --eval windows) and chooses. ERR_BOUND_UNMET, with the
 * curve in the message, when not even one layer can go within the bound.
 */
export async function chooseByQuality(
  ckpt: Checkpoint, batches: readonly Batch[], scores: readonly LayerScore[], metric: Metric, req: ResolvedRequest,
  options: RemovalRequest & { qualityBound: QualityBounds; snapshotBudgetBytes?: number }, pass: PassOptions,
  blockStates?: NativeLastTokenStates,
): Promise<{ curve: QualityCurve; chosen: StrategyResult }> {
  // Block: the best block of each length that fits between --keep-first and --keep-last.
  const blockOf = (k: number) => chooseBlock(blockStates as NativeLastTokenStates, { ...req, count: k });
  const cuts = blockStates ? Array.from({ length: req.count }, (_, k) => blockOf(k + 1).removed) : oneShotCuts(scores, metric, req);
  const curve = await measureCurve(ckpt, batches, cuts, options.qualityBound, { ...pass, phase: 'eval-curve', snapshotBudgetBytes: options.snapshotBudgetBytes });
  if (curve.chosen === 0) {
    throw new ShortGptError('ERR_BOUND_UNMET', `no cut stays within the bound (${describeBounds(options.qualityBound)}); nothing written. The curve:\n${curveTable(curve)}`);
  }
  const chosen = blockStates ? blockOf(curve.chosen) : oneShot(scores.map(toMetricScores), metric, { ...options, remove: curve.chosen, ratio: undefined });
  const p = curve.points[curve.chosen];
  for (const l of chosen.removed) if (chosen.reasons[l] !== undefined) chosen.reasons[l] += `; ${curve.chosen} layer${curve.chosen === 1 ? '' : 's'} is the largest cut within the bound (${describeBounds(options.qualityBound)}): perplexity ${p.perplexity.toFixed(4)}, KL ${p.kl.mean.toPrecision(3)}`;
  return { curve, chosen };
}

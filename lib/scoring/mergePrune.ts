/**
 * `prune MODEL --scores SCORES.json`: choose layers from merged scores instead of scoring.
 * The scores must be of this model (config.json and safetensors header hashes); one-shot ranks
 * the merged per-layer means, block ranks the merged last-token pair sums by the same rule as a
 * scored run (lib/prune/strategies/block.ts). Iterative re-scores the shortened model after
 * every removal, which needs the model running between steps: refused, with the loop to run
 * instead (README "Scaling out").
 */
import type { Checkpoint } from '../checkpoint/types';
import { ShortGptError } from '../errors';
import type { LoadedWindows } from '../prune/calibration';
import type { ResolvedRequest, RemovalRequest } from '../prune/choose';
import { chooseBlockBy } from '../prune/strategies/block';
import { oneShot } from '../prune/strategies/oneShot';
import type { StrategyResult } from '../prune/strategies/types';
import { toMetricScores } from '../report/buildReport';
import type { Metric, Strategy } from '../report/types';
import { layerScoreOf, type MergedScores } from './merge';
import { modelIdentity } from './partialProvenance';
import type { LayerScore } from './scoreLayers';

/** Refuses scores of another model, or a strategy that cannot choose from stored scores. */
export function checkScoresForModel(scores: MergedScores, ckpt: Checkpoint, strategy: Strategy, file = 'the scores'): void {
  if (strategy === 'iterative') {
    throw new ShortGptError('ERR_SCORES_STRATEGY', `prune --scores: the iterative strategy re-scores the shortened model after each removal, so it cannot choose from ${file}; use one-shot or block with --scores, or run it as rounds (examples/iterative-rounds.sh: score sharded, merge, prune --scores --remove 1, repeat on the result)`);
  }
  const here = modelIdentity(ckpt);
  const there = scores.provenance.model;
  if (here.configSha256 !== there.configSha256) {
    throw new ShortGptError('ERR_SCORES_MODEL', `prune --scores: ${file} were computed on a different model: config.json sha256 ${there.configSha256.slice(0, 12)}… there, ${here.configSha256.slice(0, 12)}… in ${ckpt.dir}`);
  }
  if (here.tensorHeadersSha256 !== there.tensorHeadersSha256) {
    throw new ShortGptError('ERR_SCORES_MODEL', `prune --scores: ${file} were computed on a different model: the safetensors headers of ${ckpt.dir} differ from the scored model's`);
  }
  // The hashes pin the model, but the layer count the sums are sized by is a field of the file:
  // an edited one would choose among the wrong layers.
  if (there.numHiddenLayers !== ckpt.config.numHiddenLayers || scores.sums.layers.length !== ckpt.config.numHiddenLayers) {
    throw new ShortGptError('ERR_SCORES_MODEL', `prune --scores: ${file} hold sums for ${scores.sums.layers.length} layers (numHiddenLayers ${there.numHiddenLayers}), but ${ckpt.dir} has ${ckpt.config.numHiddenLayers}`);
  }
}

/** The calibration data as the scores record it: summary and sources, no windows (nothing is run). */
export function scoresCalibration(scores: MergedScores): LoadedWindows {
  return { sources: scores.provenance.data.sources, windows: [], summary: scores.provenance.data.summary, batches: [] };
}

/** One-shot or block choice from merged scores; the per-layer scores for the report. */
export function chooseFromScores(scores: MergedScores, strategy: Strategy, metric: Metric, req: ResolvedRequest, request: RemovalRequest): { scores: LayerScore[]; chosen: StrategyResult } {
  const layers = scores.sums.layers.map(layerScoreOf);
  if (strategy === 'block') {
    const { sequences, sums } = scores.sums.block;
    return { scores: layers, chosen: chooseBlockBy((start, end) => sums[start][end - start - 1] / sequences, req) };
  }
  return { scores: layers, chosen: oneShot(layers.map(toMetricScores), metric, request) };
}

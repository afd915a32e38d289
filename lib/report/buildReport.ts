/**
 * ReportInput -> PruneReport: ranks, old -> new mapping, reasons, the cut in other tools' terms.
 * Pure (no I/O) so tests and the library can build reports from any scores.
 */
import { ShortGptError } from '../errors';
import { describeCalibration } from '../data/windows';
import { packageVersion } from '../version';
import { llamaCppPruneLayers, mergekitSlices, normalizeRemoved } from './cuts';
import { METRIC_NAMES, type LayerReport, type Metric, type MetricScores, type PruneReport, type ReportInput } from './types';

/** A score as people read it: 4 significant digits, small values in exponent form. */
export function formatScore(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v !== 0 && Math.abs(v) < 1e-3) return v.toExponential(2);
  return v.toFixed(4);
}

/** The scoring step's per-layer result (lib/scoring) in the report's metric names. */
export function toMetricScores(s: { blockInfluence: number; angularDistance: number; relativeMagnitude: number; nanCount?: number }): MetricScores {
  const m: MetricScores = { bi: s.blockInfluence, angular: s.angularDistance, relmag: s.relativeMagnitude };
  if (s.nanCount !== undefined) m.zeroNormTokens = s.nanCount;
  return m;
}

/** Rank layers by a metric: 1 = lowest score = least influential; NaN last; ties by index. */
export function rankLayers(scores: readonly number[]): number[] {
  const order = scores.map((s, i) => i).sort((a, b) => {
    const x = scores[a];
    const y = scores[b];
    if (Number.isNaN(x) !== Number.isNaN(y)) return Number.isNaN(x) ? 1 : -1;
    return x === y || (Number.isNaN(x) && Number.isNaN(y)) ? a - b : x - y;
  });
  const rank = new Array<number>(scores.length);
  order.forEach((layer, r) => (rank[layer] = r + 1));
  return rank;
}

function defaultReason(input: ReportInput, layer: number, rank: number): string {
  const name = METRIC_NAMES[input.metric];
  const score = input.scores[layer][input.metric];
  const n = input.scores.length;
  if (input.strategy === 'iterative' && input.iterations) {
    const step = input.iterations.find((s) => s.removed === layer);
    if (step) {
      const left = Object.keys(step.scores).length;
      return `lowest ${name} (${formatScore(step.score)}) among the ${left} layers left at step ${step.step}, re-scored after the earlier removals`;
    }
  }
  if (input.strategy === 'block' && input.block) {
    const b = input.block;
    return `inside the block of layers ${b.start}..${b.end - 1} whose input and output are closest (angular distance ${formatScore(b.distance)} on the last token)`;
  }
  return `${name} ${formatScore(score)}, rank ${rank} of ${n} (lowest = least influential)`;
}

/** Builds report.json from a prune run's inputs: ranks, reasons, the old -> new mapping and the cut in mergekit and llama.cpp terms. Pure: no I/O. */
export function buildReport(input: ReportInput): PruneReport {
  const numLayers = input.model.numLayers;
  if (input.scores.length !== numLayers) {
    throw new ShortGptError('ERR_REPORT_INPUT', `report: ${input.scores.length} layer scores for a model of ${numLayers} layers`);
  }
  const removed = normalizeRemoved(numLayers, input.removed);
  if (removed.length >= numLayers) {
    throw new ShortGptError('ERR_REPORT_INPUT', `report: all ${numLayers} layers removed`);
  }
  const gone = new Set(removed);
  const keptLayers: number[] = [];
  const layerMapping: Record<string, number> = {};
  for (let i = 0; i < numLayers; i++) {
    if (gone.has(i)) continue;
    layerMapping[String(i)] = keptLayers.length;
    keptLayers.push(i);
  }
  const metric: Metric = input.metric;
  const ranks = rankLayers(input.scores.map((s) => s[metric]));
  const layers: LayerReport[] = input.scores.map((s, i) => ({
    layer: i,
    bi: s.bi,
    angular: s.angular,
    relmag: s.relmag,
    zeroNormTokens: s.zeroNormTokens ?? 0,
    rank: ranks[i],
    removed: gone.has(i),
    newIndex: gone.has(i) ? null : layerMapping[String(i)],
    reason: gone.has(i) ? (input.reasons?.[i] ?? defaultReason(input, i, ranks[i])) : null,
  }));

  const p = input.perplexity;
  return {
    schema: 'shortgpt-native/prune-report',
    schemaVersion: 1,
    createdAt: input.createdAt ?? new Date().toISOString(),
    dryRun: input.dryRun ?? false,
    model: {
      source: input.model.source,
      output: input.model.output,
      architecture: input.model.architecture,
      numLayers,
      numLayersAfter: keptLayers.length,
      parameters: input.model.parameters ?? null,
      bytes: input.model.bytes ?? null,
    },
    metric,
    strategy: input.strategy,
    request: {
      remove: input.request.remove ?? null,
      ratio: input.request.ratio ?? null,
      keepFirst: input.request.keepFirst ?? 0,
      keepLast: input.request.keepLast ?? 0,
    },
    layers,
    removedLayers: removed,
    keptLayers,
    layerMapping,
    iterations: input.iterations ?? null,
    block: input.block ?? null,
    calibration: { ...input.calibration.summary, sources: input.calibration.sources, description: describeCalibration(input.calibration.summary), warnings: input.calibration.warnings ?? [] },
    perplexity: p
      ? {
        data: p.data, predictions: p.predictions, before: p.before, after: p.after, rise: p.after / p.before - 1, warnings: p.warnings ?? [],
        ...(p.kl ? { kl: p.kl } : {}), ...(p.top1Agreement !== undefined ? { top1Agreement: p.top1Agreement } : {}), ...(p.klOf ? { klOf: p.klOf } : {}),
      }
      : null,
    timings: input.timings ?? {},
    versions: { 'shortgpt-native': packageVersion, node: process.versions.node, ...input.versions },
    cut: {
      mergekit: mergekitSlices(numLayers, removed),
      ...(input.model.mergekitDtype !== undefined ? { mergekitDtype: input.model.mergekitDtype } : {}),
      llamaCppPruneLayers: llamaCppPruneLayers(removed),
    },
    ...(input.heal ? { heal: input.heal } : {}),
    ...(input.bootstrap ? { bootstrap: input.bootstrap } : {}),
    ...(input.qualityCurve ? { qualityCurve: input.qualityCurve } : {}),
  };
}

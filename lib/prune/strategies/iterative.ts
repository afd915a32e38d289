/**
 * Iterative: remove the lowest-scored layer, re-score the shortened model on the same windows,
 * repeat until N layers are gone. Each removal changes only what comes after it: the layers
 * before the removed index r see the same input and produce the same output, so their scores
 * stand, and the residual stream entering r is the one the previous pass already computed. So
 * a re-score restores that stream from a snapshot and runs only the layers after r.
 *
 * Snapshots (the residual stream of every window, tokens x hidden f32) are kept at layer
 * boundaries within `snapshotBudgetBytes`. The trade-off: a snapshot at every eligible boundary
 * makes each re-score run only the layers after the cut (the least compute), at tokens x hidden x 4
 * bytes per boundary; a smaller budget keeps evenly spaced boundaries and recomputes from the
 * nearest earlier one (the embedding, if none), costing at most the layers between two kept
 * boundaries per step; a budget of 0 recomputes every re-score from the embedding. Restoring is
 * an exact copy, so the scores are the same whatever the budget.
 *
 * A snapshot at boundary b (the stream entering source layer b) stays valid while no layer
 * before b is removed; removing r drops the snapshots after r and the next pass takes new ones.
 */
import type { Checkpoint } from '../../checkpoint/types';
import { embeddingRef, layerTensorRefs, nativeModelSpec, nextLayerRefs } from '../../engine/modelSpec';
import { EngineSession } from '../../engine/session';
import { METRIC_NAMES, type IterationStep, type Metric } from '../../report/types';
import { toMetricScores } from '../../report/buildReport';
import { layerScore, type LayerScore } from '../../scoring/scoreLayers';
import { byScore, type ResolvedRequest } from '../choose';
import { addLayerScores, batchTokens, WorkTracker, type Batch, type PassOptions } from './passes';
import type { StrategyResult } from './types';

/** Default snapshot memory: 1 GiB. */
export const DEFAULT_SNAPSHOT_BUDGET_BYTES = 2 ** 30;

/** Options of the iterative strategy: the passes' engine, progress and cancellation, and snapshot memory. */
export interface IterativeOptions extends PassOptions {
  /** Memory for residual-stream snapshots; 0 disables them (every re-score starts from the embedding). */
  snapshotBudgetBytes?: number;
}

/** The iterative strategy's choice with every step's scores. */
export interface IterativeResult extends StrategyResult {
  iterations: IterationStep[];
  /** The first pass: every layer of the full model. */
  initial: LayerScore[];
  /** After removal k (index k-1): the scores of the layers still present, by source index. */
  rescored: Array<Record<number, LayerScore>>;
  snapshots: {
    /** Boundaries (source layer indices) snapshots were kept at. */
    boundaries: number[];
    bytesEach: number;
    taken: number;
    restored: number;
    /** Layer runs repeated because no snapshot sat right at the cut. */
    layersRecomputed: number;
  };
}

/** k of the candidates, evenly spread (all of them when k >= their count). */
export function spreadBoundaries(candidates: readonly number[], k: number): number[] {
  if (k >= candidates.length) return [...candidates];
  if (k <= 0) return [];
  const out = new Set<number>();
  for (let i = 0; i < k; i++) out.add(candidates[Math.floor(((i + 1) * candidates.length) / (k + 1))]);
  return [...out].sort((a, b) => a - b);
}

/** Removes `req.count` layers one at a time by `metric`, re-scoring the shortened model on the same batches after each removal (see the top of this file). */
export async function iterative(ckpt: Checkpoint, batches: readonly Batch[], metric: Metric, req: ResolvedRequest, opts: IterativeOptions = {}): Promise<IterativeResult> {
  const numLayers = ckpt.config.numHiddenLayers;
  const spec = nativeModelSpec(ckpt.config);
  const totalTokens = batches.reduce((s, b) => s + batchTokens(b), 0);
  const bytesEach = totalTokens * ckpt.config.hiddenSize * 4;
  const budget = opts.snapshotBudgetBytes ?? DEFAULT_SNAPSHOT_BUDGET_BYTES;
  // Boundary 0 (after the embedding) is never kept: the embedding is a table lookup, cheaper than a copy.
  const candidates = req.eligible.filter((l) => l > 0);
  const boundaries = spreadBoundaries(candidates, bytesEach > 0 ? Math.floor(budget / bytesEach) : 0);
  const planned = new Set(boundaries);
  const snaps: Array<Map<number, Float32Array>> = batches.map(() => new Map());
  const removed = new Set<number>();
  const stats = { taken: 0, restored: 0, layersRecomputed: 0 };

  /** Runs every batch from the stream entering `start`; returns the sums of the kept layers from `start` on. */
  const pass = async (start: number, step: number): Promise<LayerScore[]> => {
    // Every batch takes and drops its snapshots in the same passes, so all restart from the
    // same boundary: the latest kept one at or before `start` (0: from the embedding).
    let from = 0;
    for (const key of snaps[0]?.keys() ?? []) if (key <= start && key > from) from = key;
    // Progress counts every layer that runs, the ones recomputed up to `start` included.
    const run: number[] = [];
    for (let l = from; l < numLayers; l++) if (!removed.has(l)) run.push(l);
    const tracker = new WorkTracker(batches, run.length, step === 0 ? { phase: 'score', layers: numLayers } : { phase: 'rescore', layers: numLayers, step, steps: req.count }, opts.onProgress);
    tracker.start(run[0] ?? start);
    let sums: LayerScore[] | undefined;
    for (let b = 0; b < batches.length; b++) {
      const session = EngineSession.create(spec, batches[b], opts.engine);
      try {
        const snap = from > 0 ? snaps[b].get(from) : undefined;
        if (snap) {
          session.restore(snap);
          stats.restored++;
        } else {
          await session.embed(embeddingRef(ckpt), { signal: opts.signal });
        }
        const batchScores: LayerScore[] = [];
        for (let l = snap ? from : 0; l < numLayers; l++) {
          if (planned.has(l) && !snaps[b].has(l)) {
            snaps[b].set(l, session.snapshot());
            stats.taken++;
          }
          if (removed.has(l)) continue;
          const progress = tracker.callback(b, l, run.indexOf(l));
          const s = await session.forwardLayer(l, layerTensorRefs(ckpt, l), {
            signal: opts.signal,
            next: nextLayerRefs(ckpt, l, (k) => !removed.has(k)),
            onProgress: progress ? (p) => progress(p.sequencesDone) : undefined,
          });
          if (l < start) stats.layersRecomputed++;
          else batchScores.push(layerScore(l, s));
        }
        sums = addLayerScores(sums, batchScores);
      } finally {
        await session.dispose();
      }
    }
    tracker.finish(numLayers - 1);
    return sums ?? [];
  };

  const initial = await pass(0, 0);
  const current = new Map<number, LayerScore>(initial.map((s) => [s.layer, s]));
  const iterations: IterationStep[] = [];
  const rescored: Array<Record<number, LayerScore>> = [];
  const reasons: Record<number, string> = {};
  const metricOf = (l: number): number => toMetricScores(current.get(l) as LayerScore)[metric];
  for (let step = 1; step <= req.count; step++) {
    const present = [...current.keys()].sort((a, b) => a - b);
    const pick = req.eligible.filter((l) => current.has(l)).sort(byScore(metricOf))[0];
    const scores: Record<string, number> = {};
    for (const l of present) scores[String(l)] = metricOf(l);
    iterations.push({ step, removed: pick, score: metricOf(pick), scores });
    const name = METRIC_NAMES[metric];
    reasons[pick] = step === 1
      ? `lowest ${name} (${metricOf(pick).toPrecision(4)}) of the full model (step 1 of ${req.count})`
      : `lowest ${name} (${metricOf(pick).toPrecision(4)}) among the ${present.length} layers left at step ${step} of ${req.count}, re-scored after removing ${[...removed].join(', ')}`;
    removed.add(pick);
    current.delete(pick);
    for (const snapMap of snaps) for (const key of [...snapMap.keys()]) if (key > pick) snapMap.delete(key);
    // The last removal needs no re-score for the choice, but the report and tests want the
    // shortened model's scores, which are cheap from the snapshot.
    for (const s of await pass(pick, step)) current.set(s.layer, s);
    const now: Record<number, LayerScore> = {};
    for (const [l, s] of current) now[l] = s;
    rescored.push(now);
  }
  return {
    removed: [...removed].sort((a, b) => a - b),
    reasons,
    iterations,
    initial,
    rescored,
    snapshots: { boundaries, bytesEach, ...stats },
  };
}

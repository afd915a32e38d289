/**
 * Measures the quality curve of candidate cuts (prune with a quality bound): for each cut, the
 * perplexity, KL(dense || cut) and top-1 agreement on held-out windows, with the cut's layers
 * skipped at run time (no rewrite), plus task accuracy when a task bound is given.
 *
 * Per batch of windows, one session runs the dense model once. Before each layer that begins
 * some cut (the lowest layer it removes), the residual stream is snapshotted: every layer before
 * a cut is the same as the dense model's, so each cut restores its snapshot and runs only the
 * layers from there on, skipping its own. The dense final stream is the reference of every
 * divergence pass. Snapshots are kept for the deepest boundaries first, within
 * `snapshotBudgetBytes`; a cut without one re-runs from the embedding.
 */
import type { Checkpoint } from '../checkpoint/types';
import { embeddingRef, finalNormRef, layerTensorRefs, lmHeadRef, nativeModelSpec } from '../engine/modelSpec';
import { engineOptionsOf } from '../engine/engineOptions';
import { EngineSession } from '../engine/session';
import { referenceHead } from '../eval/compare';
import { ComparisonAccumulator } from '../eval/compareStats';
import { evaluateTasks, loadTaskFile, type TaskSpec } from '../eval/tasks';
import { inWindowTerms, WorkTracker, type Batch, type PassOptions } from './strategies/passes';
import { chooseByBound, withinBounds, type CurvePoint, type QualityBounds, type QualityCurve } from './qualityBound';

export interface SweepOptions extends PassOptions {
  /** Memory for the residual-stream snapshots of one batch (default 1 GiB). */
  snapshotBudgetBytes?: number;
  /** The progress phase (default 'eval-before'). */
  phase?: string;
}

const DEFAULT_SNAPSHOT_BUDGET = 1024 ** 3;

/** The boundaries (first removed layer of each cut) whose snapshot fits the budget, deepest first. */
export function keptBoundaries(cuts: readonly (readonly number[])[], snapshotBytes: number, budget: number): Set<number> {
  const starts = [...new Set(cuts.map((c) => Math.min(...c)))].sort((a, b) => b - a);
  const room = snapshotBytes > 0 ? Math.floor(budget / snapshotBytes) : starts.length;
  return new Set(starts.slice(0, Math.max(0, room)));
}

/**
 * The curve: point 0 is the dense model, point k the cut `cuts[k - 1]` (k layers, in the
 * strategy's order). Every cut must be non-empty and leave a layer.
 */
export async function measureCurve(ckpt: Checkpoint, batches: readonly Batch[], cuts: readonly (readonly number[])[], bounds: QualityBounds, opts: SweepOptions = {}): Promise<QualityCurve> {
  const L = ckpt.config.numHiddenLayers;
  const H = ckpt.config.hiddenSize;
  const accs = cuts.map(() => new ComparisonAccumulator());
  const budget = opts.snapshotBudgetBytes ?? DEFAULT_SNAPSHOT_BUDGET;
  const maxBatchTokens = Math.max(0, ...batches.map((b) => b.reduce((n, s) => n + s.length, 0)));
  const kept = keptBoundaries(cuts, maxBatchTokens * H * 4, budget);
  // Layers each batch runs: the dense pass, then each cut from its snapshot (or from the start).
  const plans = cuts.map((cut) => {
    const start = Math.min(...cut);
    const from = kept.has(start) ? start : -1;  // -1: no snapshot, from the embedding

    const first = Math.max(0, from);
    return { from, run: Array.from({ length: L - first }, (_, i) => first + i).filter((l) => !cut.includes(l)) };
  });
  const layersRun = L + plans.reduce((n, p) => n + p.run.length, 0);
  const tracker = new WorkTracker(batches, layersRun, { phase: opts.phase ?? 'eval-before', layers: L }, opts.onProgress);
  const engine = engineOptionsOf(opts.engine ?? {});
  const signal = opts.signal;
  tracker.start(0);
  for (let b = 0; b < batches.length; b++) {
    const seqs = batches[b];
    const session = EngineSession.create(nativeModelSpec(ckpt.config), seqs, engine);
    let ordinal = 0;
    const forward = async (l: number) => {
      const cb = tracker.callback(b, l, ordinal++);
      await session.forwardLayer(l, layerTensorRefs(ckpt, l), { signal, onProgress: cb && ((p) => cb(p.sequencesDone)) });
    };
    try {
      await session.embed(embeddingRef(ckpt), { signal });
      const snaps = new Map<number, Float32Array>();
      for (let l = 0; l < L; l++) {
        if (kept.has(l)) snaps.set(l, session.snapshot());
        await forward(l);
      }
      const ref = referenceHead(ckpt, session.snapshot());
      const lengths = seqs.map((s) => s.length);
      for (let k = 0; k < cuts.length; k++) {
        const { from, run } = plans[k];
        const snap = snaps.get(from);
        // A session embeds once: a cut with no snapshot to resume from runs in a fresh one.
        const s = snap ? session : EngineSession.create(nativeModelSpec(ckpt.config), seqs, engine);
        try {
          if (snap) {
            s.restore(snap);
          } else {
            await s.embed(embeddingRef(ckpt), { signal });
          }
          for (const l of run) {
            const cb = tracker.callback(b, l, ordinal++);
            await s.forwardLayer(l, layerTensorRefs(ckpt, l), { signal, onProgress: cb && ((p) => cb(p.sequencesDone)) });
          }
          accs[k].add(await s.divergence(ref, finalNormRef(ckpt), lmHeadRef(ckpt), { signal }), lengths);
        } finally {
          if (s !== session) await s.dispose();
        }
      }
    } catch (e) {
      throw inWindowTerms(e, batches, b, '--eval data batch');
    } finally {
      await session.dispose();
    }
  }
  tracker.finish(L - 1);

  const results = accs.map((a) => a.result());
  const dense = results[0];
  let task: TaskSpec | undefined;
  const taskAcc = async (skipLayers: number[]): Promise<number | undefined> => {
    if (!bounds.minTaskAcc) return undefined;
    task ??= await loadTaskFile(bounds.minTaskAcc.file, { format: bounds.minTaskAcc.format });
    const [r] = await evaluateTasks(ckpt, [task], { ...engine, skipLayers, signal });
    return r.acc;
  };
  const points: CurvePoint[] = [];
  const densePoint = {
    count: 0, layers: [], perplexity: dense.perplexity.reference, pplIncrease: 0, kl: { mean: 0, p95: 0 }, top1Agreement: 1, taskAcc: await taskAcc([]),
  };
  points.push({ ...densePoint, withinBound: withinBounds(densePoint, bounds) });
  for (let k = 0; k < cuts.length; k++) {
    const r = results[k];
    const layers = [...cuts[k]].sort((a, b) => a - b);
    const p = {
      count: cuts[k].length, layers, perplexity: r.perplexity.candidate, pplIncrease: r.perplexity.candidate / r.perplexity.reference - 1,
      kl: r.kl, top1Agreement: r.top1Agreement, taskAcc: await taskAcc(layers),
    };
    points.push({ ...p, withinBound: withinBounds(p, bounds) });
  }
  for (const p of points) if (p.taskAcc === undefined) delete p.taskAcc;
  return { bounds, points, chosen: chooseByBound(points), predictions: dense.predictions };
}

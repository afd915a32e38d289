/**
 * How stable is the ranking? The layer scores are means over a sample of calibration windows, so
 * a bootstrap over windows (Efron 1979) says how much they would move with other windows: draw
 * as many windows as there are, with replacement, recompute every layer's score from the drawn
 * windows' sums (the engine keeps per-window sums, so no forward pass runs again), repeat. Each
 * layer gets a 95% percentile interval, and each chosen layer the fraction of resamples in which
 * the same rule chooses it again. Scores are token-weighted as the pooled ones are: a resampled
 * score is (sum over drawn windows of the window's sum) / (its tokens), not a mean of means.
 */
import type { NativePerSequenceStats } from '../../binding';
import { ShortGptError } from '../errors';
import { chooseLayers, type RemovalRequest } from '../prune/choose';
import type { Metric, MetricScores } from '../report/types';
import { mulberry32 } from '../util/prng';
import type { LayerScore } from './scoreLayers';

/** Options of {@link bootstrapScores}. */
export interface BootstrapOptions {
  /** Resamples (e.g. 200). */
  samples: number;
  /** Seed of the resampling (mulberry32): the same seed gives the same result. */
  seed?: number;
  /** The score ranked by (default 'bi'). */
  metric?: Metric;
  /**
   * The one-shot request (remove/ratio, keepFirst/keepLast): with it, the layers it chooses on
   * the pooled scores get the probability of being chosen again in a resample.
   */
  request?: RemovalRequest;
}

/** One layer's score and its bootstrap interval. */
export interface LayerInterval {
  /** The layer's index in the checkpoint. */
  layer: number;
  /** The score on all windows (the pooled one). */
  estimate: number;
  /** 2.5th and 97.5th percentiles of the resampled scores (linear interpolation, numpy's default). */
  low: number;
  /** The 97.5th percentile (low is the 2.5th). */
  high: number;
}

/** A chosen layer and how often a resample chooses it too. */
export interface ChosenStability {
  /** A chosen layer. */
  layer: number;
  /** Fraction of resamples whose choice includes it. */
  probability: number;
}

/** What {@link bootstrapScores} returns. */
export interface BootstrapResult {
  /** Resamples drawn. */
  samples: number;
  /** The resampling's seed. */
  seed: number;
  /** Windows resampled (all scored sequences). */
  windows: number;
  /** The score resampled and ranked by. */
  metric: Metric;
  /** 0.95. */
  confidence: number;
  /** Per layer, in layer order. */
  layers: LayerInterval[];
  /** With a request: the one-shot choice on the pooled scores and each chosen layer's probability. */
  chosen?: {
    /** The layers chosen on the pooled scores, ascending. */
    layers: number[];
    /** Each chosen layer and the fraction of resamples choosing it too. */
    perLayer: ChosenStability[];
    /** Fraction of resamples choosing exactly the same set. */
    sameSet: number;
  };
}

/** Probabilities under this get flagged in reports: the advice is to add calibration data. */
export const STABLE_PROBABILITY = 0.9;

/** Concatenates two runs' per-window sums (windows of `b` after those of `a`); undefined unless both have them. */
export function concatPerWindow(a?: NativePerSequenceStats, b?: NativePerSequenceStats): NativePerSequenceStats | undefined {
  if (!a || !b) return undefined;
  const cat = (x: Float64Array, y: Float64Array): Float64Array => {
    const out = new Float64Array(x.length + y.length);
    out.set(x);
    out.set(y, x.length);
    return out;
  };
  return {
    tokens: cat(a.tokens, b.tokens),
    sumCos: cat(a.sumCos, b.sumCos),
    nanCount: cat(a.nanCount, b.nanCount),
    sumAngular: cat(a.sumAngular, b.sumAngular),
    sumRelMag: cat(a.sumRelMag, b.sumRelMag),
  };
}

/** Percentile q (0..1) of sorted values, interpolated linearly between order statistics. */
export function percentile(sorted: readonly number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

function metricOf(tokens: number, sumCos: number, sumAngular: number, sumRelMag: number): MetricScores {
  return { bi: 1 - sumCos / tokens, angular: sumAngular / tokens, relmag: sumRelMag / tokens };
}

/**
 * Bootstraps every layer's score over windows. Throws ERR_BOOTSTRAP when a layer has no
 * per-window sums (a backend that keeps none: CUDA) or the layers disagree on the windows.
 */
export function bootstrapScores(scores: readonly LayerScore[], options: BootstrapOptions): BootstrapResult {
  const { samples } = options;
  const seed = options.seed ?? 0;
  const metric = options.metric ?? 'bi';
  if (!Number.isSafeInteger(samples) || samples < 1) {
    throw new ShortGptError('ERR_BOOTSTRAP', `--bootstrap must be a positive integer number of resamples, got ${samples}`);
  }
  const per = scores.map((s) => {
    if (!s.perWindow) {
      throw new ShortGptError('ERR_BOOTSTRAP', `--bootstrap needs per-window sums, which this backend does not keep (layer ${s.layer}); run the scoring on the CPU backend (--device cpu)`);
    }
    return s.perWindow;
  });
  const windows = per.length ? per[0].tokens.length : 0;
  if (per.some((p) => p.tokens.length !== windows)) {
    throw new ShortGptError('ERR_BOOTSTRAP', 'the layers were scored on different windows; cannot bootstrap');
  }
  if (windows < 1) throw new ShortGptError('ERR_BOOTSTRAP', '--bootstrap needs at least one scored window');

  const pooled = scores.map((s) => metricOf(s.tokens, s.sumCos, s.sumAngular, s.sumRelMag));
  const chosen = options.request ? chooseLayers(pooled, { ...options.request, metric }).removed : undefined;
  const hits = new Map<number, number>((chosen ?? []).map((l) => [l, 0]));
  let sameSet = 0;

  const random = mulberry32(seed);
  const counts = new Float64Array(windows);
  const resampled: number[][] = scores.map(() => []);
  for (let b = 0; b < samples; b++) {
    counts.fill(0);
    for (let i = 0; i < windows; i++) counts[Math.floor(random() * windows)] += 1;
    const draw: MetricScores[] = per.map((p) => {
      let t = 0, c = 0, a = 0, r = 0;
      for (let w = 0; w < windows; w++) {
        const k = counts[w];
        if (k === 0) continue;
        t += k * p.tokens[w];
        c += k * p.sumCos[w];
        a += k * p.sumAngular[w];
        r += k * p.sumRelMag[w];
      }
      return metricOf(t, c, a, r);
    });
    draw.forEach((m, l) => resampled[l].push(m[metric]));
    if (chosen && options.request) {
      const again = chooseLayers(draw, { ...options.request, metric }).removed;
      for (const l of again) if (hits.has(l)) hits.set(l, (hits.get(l) as number) + 1);
      if (again.length === chosen.length && again.every((l, i) => l === chosen[i])) sameSet++;
    }
  }

  const layers = scores.map((s, l): LayerInterval => {
    const sorted = [...resampled[l]].sort((x, y) => x - y);
    return { layer: s.layer, estimate: pooled[l][metric], low: percentile(sorted, 0.025), high: percentile(sorted, 0.975) };
  });
  return {
    samples,
    seed,
    windows,
    metric,
    confidence: 0.95,
    layers,
    ...(chosen
      ? { chosen: { layers: chosen, perLayer: chosen.map((l) => ({ layer: l, probability: (hits.get(l) as number) / samples })), sameSet: sameSet / samples } }
      : {}),
  };
}

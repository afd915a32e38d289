/**
 * Which layers to delete, given every layer's scores: the request (--remove N or --ratio R, the
 * metric, --keep-first/--keep-last) is validated here, once, for every strategy, and the one-shot
 * choice of ShortGPT (Men et al. 2024, §4: delete the N layers of lowest Block Influence) is made
 * here. For all three metrics a lower score means a layer that changes the residual stream less,
 * i.e. a less influential layer.
 */
import { ShortGptError } from '../errors';
import { METRICS, METRIC_NAMES, STRATEGIES, type Metric, type MetricScores, type Strategy } from '../report/types';

/** How many layers to delete (`remove` or `ratio`, one of them) and which never to touch. */
export interface RemovalRequest {
  /** Delete exactly this many layers. */
  remove?: number;
  /** Delete round(ratio * layers) layers; 0 < ratio < 1. */
  ratio?: number;
  /** Never delete the first K layers (default 0). */
  keepFirst?: number;
  /** Never delete the last K layers (default 0). */
  keepLast?: number;
}

/** Options of {@link chooseLayers}: the removal request and the metric to rank by. */
export interface ChooseOptions extends RemovalRequest {
  /** Score to rank by (default 'bi'); lower = less influential. */
  metric?: Metric;
}

/** A request checked against a model's layer count. */
export interface ResolvedRequest {
  /** Decoder layers of the model. */
  numLayers: number;
  /** Layers to delete. */
  count: number;
  /** Leading layers that are never deleted. */
  keepFirst: number;
  /** Trailing layers that are never deleted. */
  keepLast: number;
  /** Layers that may be deleted: [keepFirst, numLayers - keepLast). */
  eligible: number[];
}

/** What {@link chooseLayers} chose, with the request it checked. */
export interface LayerChoice extends ResolvedRequest {
  /** The score the layers were ranked by. */
  metric: Metric;
  /** Chosen layers, ascending. */
  removed: number[];
  /** Per chosen layer, why. */
  reasons: Record<number, string>;
}

/** Checks a metric name ('bi', 'angular', 'relmag'); ERR_METRIC naming `what` otherwise. */
export function parseMetric(value: string, what = 'metric'): Metric {
  if ((METRICS as readonly string[]).includes(value)) return value as Metric;
  throw new ShortGptError('ERR_METRIC', `unknown ${what} '${value}': expected one of ${METRICS.join(', ')}`);
}

/** Checks a strategy name ('one-shot', 'iterative', 'block'); ERR_STRATEGY naming `what` otherwise. */
export function parseStrategy(value: string, what = 'strategy'): Strategy {
  if ((STRATEGIES as readonly string[]).includes(value)) return value as Strategy;
  throw new ShortGptError('ERR_STRATEGY', `unknown ${what} '${value}': expected one of ${STRATEGIES.join(', ')}`);
}

function nonNegativeInt(v: number | undefined, name: string): number {
  if (v === undefined) return 0;
  if (!Number.isSafeInteger(v) || v < 0) throw new ShortGptError('ERR_KEEP_RANGE', `${name} must be a non-negative integer, got ${v}`);
  return v;
}

/**
 * How many layers to delete and which may be. Exactly one of remove/ratio; at least one layer
 * removed and one kept; the count must fit between the protected first and last layers.
 */
export function resolveRequest(numLayers: number, req: RemovalRequest): ResolvedRequest {
  if (!Number.isSafeInteger(numLayers) || numLayers < 1) {
    throw new ShortGptError('ERR_CONFIG', `the model must have at least one layer, got num_hidden_layers ${numLayers}`);
  }
  if (req.remove !== undefined && req.ratio !== undefined) {
    throw new ShortGptError('ERR_REMOVE_OPTIONS', 'give either --remove N or --ratio R, not both');
  }
  if (req.remove === undefined && req.ratio === undefined) {
    throw new ShortGptError('ERR_REMOVE_OPTIONS', 'say how many layers to remove: --remove N (a count) or --ratio R (a fraction of the layers, 0 < R < 1)');
  }
  let count: number;
  if (req.remove !== undefined) {
    if (!Number.isSafeInteger(req.remove) || req.remove < 1) {
      throw new ShortGptError('ERR_REMOVE_COUNT', `--remove must be a positive integer, got ${req.remove}`);
    }
    count = req.remove;
  } else {
    const r = req.ratio as number;
    if (!Number.isFinite(r) || r <= 0 || r >= 1) throw new ShortGptError('ERR_REMOVE_COUNT', `--ratio must be between 0 and 1 (exclusive), got ${r}`);
    // Rounded to the nearest layer: the paper's 27% of Llama-2-7B's 32 layers is its 9 layers.
    count = Math.round(r * numLayers);
    if (count < 1) {
      throw new ShortGptError('ERR_REMOVE_COUNT', `--ratio ${r} of ${numLayers} layers rounds to 0 layers; use at least ${(0.5 / numLayers).toPrecision(2)} or --remove 1`);
    }
  }
  if (count >= numLayers) {
    throw new ShortGptError('ERR_REMOVE_COUNT', `cannot remove ${count} layers: the model has ${numLayers} layers and at least one must remain (use --remove ${numLayers - 1} or fewer)`);
  }
  const keepFirst = nonNegativeInt(req.keepFirst, '--keep-first');
  const keepLast = nonNegativeInt(req.keepLast, '--keep-last');
  const free = numLayers - keepFirst - keepLast;
  if (count > free) {
    throw new ShortGptError(
      'ERR_KEEP_RANGE',
      `cannot remove ${count} layers with --keep-first ${keepFirst} and --keep-last ${keepLast}: of the model's ${numLayers} layers only ${Math.max(0, free)} may be removed`,
    );
  }
  const eligible: number[] = [];
  for (let l = keepFirst; l < numLayers - keepLast; l++) eligible.push(l);
  return { numLayers, count, keepFirst, keepLast, eligible };
}

/** a before b when a's score is lower; NaN (an undefined statistic) never before a number; ties by index. */
export function byScore(scoreOf: (layer: number) => number): (a: number, b: number) => number {
  return (a, b) => {
    const x = scoreOf(a);
    const y = scoreOf(b);
    const nx = Number.isNaN(x);
    const ny = Number.isNaN(y);
    if (nx !== ny) return nx ? 1 : -1;
    if (nx || x === y) return a - b;
    return x - y;
  };
}

/**
 * One-shot (ShortGPT): delete the `count` eligible layers with the lowest score under `metric`
 * (default 'bi'). `scores[i]` are layer i's scores, e.g. `scores.layers.map(toMetricScores)` of a
 * {@link scoreLayers} result. Throws ShortGptError (ERR_REMOVE_COUNT, ...) on a request the model
 * cannot meet.
 *
 * @example
 * const choice = chooseLayers(scores.layers.map(toMetricScores), { remove: 2, keepLast: 1 });
 * console.log(choice.removed, choice.reasons);
 */
export function chooseLayers(scores: readonly MetricScores[], options: ChooseOptions): LayerChoice {
  const metric = parseMetric(options.metric ?? 'bi');
  const req = resolveRequest(scores.length, options);
  const order = [...req.eligible].sort(byScore((l) => scores[l][metric]));
  const removed = order.slice(0, req.count).sort((a, b) => a - b);
  const reasons: Record<number, string> = {};
  const protectedNote = req.keepFirst || req.keepLast ? ` among layers ${req.eligible[0]}..${req.eligible[req.eligible.length - 1]}` : '';
  order.slice(0, req.count).forEach((l, i) => {
    reasons[l] = `${METRIC_NAMES[metric]} ${fmt(scores[l][metric])}: the ${ordinal(i + 1)} lowest${protectedNote} (removed at once, ShortGPT one-shot)`;
  });
  return { ...req, metric, removed, reasons };
}

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toPrecision(4) : String(v);
}

function ordinal(n: number): string {
  const s = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${s}`;
}

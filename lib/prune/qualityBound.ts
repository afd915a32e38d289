/**
 * Choosing how much to cut by a quality bound (prune --max-ppl-increase / --max-kl /
 * --min-task-acc): the bounds, their parsing, the curve of candidate cuts and the choice. The
 * curve itself is measured by qualityBoundSweep.ts.
 *
 * The choice is the largest cut (the strategy's cut of each size), whose every bounded quantity is within
 * its bound. The whole curve is measured (not a bisection): quality need not fall monotonically
 * with the number of layers removed, the report shows the curve anyway, and with the dense
 * model's pass reused for the layers before each cut most candidates are cheap.
 */
import { ShortGptError } from '../errors';

/** The bounds given (any combination; all must hold). */
export interface QualityBounds {
  /** Perplexity may rise at most this fraction over the dense model's (0.25 = 25%). */
  maxPplIncrease?: number;
  /** Mean KL(dense || pruned) of the next-token distributions, nats, at most this. */
  maxKl?: number;
  /** Accuracy (acc, as lm-evaluation-harness) on a multiple-choice task file at least `minAcc`. */
  minTaskAcc?: { file: string; minAcc: number; format?: string };
}

/** One candidate cut on the curve. */
export interface CurvePoint {
  /** Layers removed (0: the dense model). */
  count: number;
  /** Which layers, ascending. */
  layers: number[];
  perplexity: number;
  /** perplexity / dense perplexity - 1. */
  pplIncrease: number;
  /** KL(dense || pruned) over the eval data's positions, nats. */
  kl: { mean: number; p95: number };
  top1Agreement: number;
  /** Task accuracy (acc) with --min-task-acc. */
  taskAcc?: number;
  /** Every bound holds. */
  withinBound: boolean;
}

export interface QualityCurve {
  bounds: QualityBounds;
  points: CurvePoint[];
  /** The count chosen: the largest within the bound (0 when no cut is). */
  chosen: number;
  /** Positions of the eval data the curve was measured on. */
  predictions: number;
}

export function hasBound(b: QualityBounds): boolean {
  return b.maxPplIncrease !== undefined || b.maxKl !== undefined || b.minTaskAcc !== undefined;
}

/** '25%' -> 0.25, '0.25' -> 0.25; ERR_BOUND naming the option otherwise. */
export function parseFraction(value: string, option: string, opts: { max?: number } = {}): number {
  const v = value.trim();
  const percent = v.endsWith('%');
  const body = percent ? v.slice(0, -1).trim() : v;
  const x = /^(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(body) ? Number(body) : Number.NaN;
  const f = percent ? x / 100 : x;
  if (!Number.isFinite(f) || f < 0 || (opts.max !== undefined && f > opts.max)) {
    const range = opts.max !== undefined ? ` between 0 and ${opts.max} (or 0%..${opts.max * 100}%)` : ' of 0 or more';
    throw new ShortGptError('ERR_BOUND', `${option} takes a fraction${range}, e.g. 25% or 0.25; got '${value}'`);
  }
  return f;
}

/** --min-task-acc FILE:ACC (ACC 0.9 or 90%); the file is read later, by the task loader. */
export function parseTaskBound(value: string, option = '--min-task-acc'): { file: string; minAcc: number } {
  const i = value.lastIndexOf(':');
  if (i <= 0 || i === value.length - 1) {
    throw new ShortGptError('ERR_BOUND', `${option} takes FILE:ACCURACY, e.g. tasks/tinystories-next.jsonl:0.9; got '${value}'`);
  }
  return { file: value.slice(0, i), minAcc: parseFraction(value.slice(i + 1), option, { max: 1 }) };
}

/** Checks the bounds' values (library callers skip the parsers): ERR_BOUND naming the option. */
export function checkBounds(b: QualityBounds): void {
  const check = (v: number | undefined, name: string, max?: number) => {
    if (v !== undefined && (!Number.isFinite(v) || v < 0 || (max !== undefined && v > max))) {
      throw new ShortGptError('ERR_BOUND', `${name} must be a number${max !== undefined ? ` between 0 and ${max}` : ' of 0 or more'}, got ${v}`);
    }
  };
  check(b.maxPplIncrease, 'maxPplIncrease (--max-ppl-increase)');
  check(b.maxKl, 'maxKl (--max-kl)');
  check(b.minTaskAcc?.minAcc, 'minTaskAcc (--min-task-acc)', 1);
  if (b.minTaskAcc !== undefined && !b.minTaskAcc.file) throw new ShortGptError('ERR_BOUND', 'minTaskAcc (--min-task-acc) needs a task file');
}

/** Whether a point's measurements satisfy every bound. */
export function withinBounds(p: Omit<CurvePoint, 'withinBound'>, b: QualityBounds): boolean {
  if (b.maxPplIncrease !== undefined && !(p.pplIncrease <= b.maxPplIncrease)) return false;
  if (b.maxKl !== undefined && !(p.kl.mean <= b.maxKl)) return false;
  if (b.minTaskAcc !== undefined && !(p.taskAcc !== undefined && p.taskAcc >= b.minTaskAcc.minAcc)) return false;
  return true;
}

/** The largest count whose point is within the bound; 0 (the dense model) when none is. */
export function chooseByBound(points: readonly CurvePoint[]): number {
  let best = 0;
  for (const p of points) if (p.count > 0 && p.withinBound && p.count > best) best = p.count;
  return best;
}

/** The bounds in words: "perplexity +25% at most, KL 0.1 nats at most". */
export function describeBounds(b: QualityBounds): string {
  const parts: string[] = [];
  if (b.maxPplIncrease !== undefined) parts.push(`perplexity rise <= ${formatPercent(b.maxPplIncrease)}`);
  if (b.maxKl !== undefined) parts.push(`mean KL <= ${b.maxKl} nats`);
  if (b.minTaskAcc !== undefined) parts.push(`accuracy on ${b.minTaskAcc.file} >= ${b.minTaskAcc.minAcc}`);
  return parts.join(', ');
}

export function formatPercent(x: number): string {
  return `${(100 * x).toFixed(x !== 0 && Math.abs(x) < 0.1 ? 2 : 1)}%`;
}

/** The curve as a text table (the CLI's dry run, and the ERR_BOUND_UNMET message). */
export function curveTable(c: QualityCurve): string {
  const task = c.bounds.minTaskAcc !== undefined;
  const head = ['removed', 'layers', 'perplexity', 'rise', 'KL mean', 'KL p95', 'top-1', ...(task ? ['task acc'] : []), 'within'];
  const rows = c.points.map((p) => [
    String(p.count), p.layers.length ? p.layers.join(',') : '-', p.perplexity.toFixed(4), formatPercent(p.pplIncrease),
    p.kl.mean.toPrecision(4), p.kl.p95.toPrecision(4), formatPercent(p.top1Agreement), ...(task ? [p.taskAcc === undefined ? '-' : p.taskAcc.toFixed(4)] : []),
    `${p.withinBound ? 'yes' : 'no'}${p.count === c.chosen && c.chosen > 0 ? '  <- chosen' : ''}`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((x, i) => x.padEnd(widths[i])).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

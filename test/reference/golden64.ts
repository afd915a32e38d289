/**
 * The golden values as the float64 reference computes them, and how two sets of golden values
 * are compared. scripts/gen-golden.ts writes the first to test/fixtures/golden and compares it
 * with ../shared/golden (another independent float64 implementation); golden-self.test.ts
 * compares it with the committed fixture.
 */
import type { Golden } from '../helpers/golden';
import { loadReferenceModel, referencePerplexity, referenceScores } from './forward64';

/**
 * Both sides are float64 runs of the same formulas, so only summation order separates them:
 * measured against ../shared/golden, below 6e-15 absolute (statistics) and 2.3e-14 relative
 * (perplexities, logits checksum). Absolute for the O(1) statistics, relative for perplexities
 * and the checksum.
 */
export const GOLDEN_TOLERANCE = 1e-12;

/** Every single layer, and "1,3" (the cut test/prune/stories260k.test.ts rewrites). */
export function goldenSkipSets(numLayers: number): string[] {
  return [...Array.from({ length: numLayers }, (_, l) => String(l)), ...(numLayers > 3 ? ['1,3'] : [])];
}

export function computeGolden(modelDir: string, sequences: readonly (readonly number[])[]): Golden {
  const numLayers = loadReferenceModel(modelDir).config.numLayers;
  const scores = referenceScores(modelDir, sequences);
  const full = referencePerplexity(modelDir, sequences);
  const perplexitySkipping: Record<string, number> = {};
  for (const key of goldenSkipSets(numLayers)) {
    perplexitySkipping[key] = referencePerplexity(modelDir, sequences, key.split(',').map(Number)).perplexity;
  }
  return {
    tokensCount: sequences.reduce((s, q) => s + q.length, 0),
    predictedCount: full.predictions,
    layers: scores.map((s) => ({ layer: s.layer, bi: s.blockInfluence, angular: s.angularDistance, relmag: s.relativeMagnitude })),
    perplexity: full.perplexity,
    perplexitySkipping,
    logitsSum: full.logitsSum,
  };
}

export interface FieldDifference {
  field: string;
  /** Largest difference over the field's entries: absolute or relative as `kind` says. */
  maxDiff: number;
  kind: 'exact' | 'absolute' | 'relative';
  ok: boolean;
}

const relDiff = (a: number, b: number) => Math.abs(a / b - 1);

/** Per field, the largest difference between two golden sets; a missing entry is an infinite one. */
export function compareGolden(ours: Golden, theirs: Golden, tol = GOLDEN_TOLERANCE): FieldDifference[] {
  const out: FieldDifference[] = [];
  const add = (field: string, kind: FieldDifference['kind'], diffs: number[]) => {
    const maxDiff = Math.max(0, ...diffs.map((d) => (Number.isNaN(d) ? Infinity : d)));
    out.push({ field, maxDiff, kind, ok: kind === 'exact' ? maxDiff === 0 : maxDiff <= tol });
  };
  add('tokensCount', 'exact', [Math.abs(ours.tokensCount - theirs.tokensCount)]);
  add('predictedCount', 'exact', [Math.abs(ours.predictedCount - theirs.predictedCount)]);
  for (const stat of ['bi', 'angular', 'relmag'] as const) {
    const diffs = theirs.layers.map((t) => {
      const o = ours.layers.find((l) => l.layer === t.layer);
      return o ? Math.abs(o[stat] - t[stat]) : Infinity;
    });
    if (ours.layers.length !== theirs.layers.length) diffs.push(Infinity);
    add(`layers[].${stat}`, 'absolute', diffs);
  }
  add('perplexity', 'relative', [relDiff(ours.perplexity, theirs.perplexity)]);
  const keys = new Set([...Object.keys(ours.perplexitySkipping), ...Object.keys(theirs.perplexitySkipping)]);
  add('perplexitySkipping', 'relative', [...keys].map((k) => {
    const o = ours.perplexitySkipping[k];
    const t = theirs.perplexitySkipping[k];
    return o === undefined || t === undefined ? Infinity : relDiff(o, t);
  }));
  add('logitsSum', 'relative', [relDiff(ours.logitsSum, theirs.logitsSum)]);
  return out;
}

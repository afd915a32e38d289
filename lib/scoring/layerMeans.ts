/**
 * A layer's score from its summed statistics: Block Influence (1 - mean cosine), mean angular
 * distance and mean relative magnitude, with the sums kept. Shared by scoreLayers (one pass) and
 * merge (sums added over shards).
 */
import type { LayerScore } from './scoreLayers';

/** The pooled sums of one layer, as the engine reports them and partial scores store them. */
export interface LayerStatSums {
  tokens: number;
  sumCos: number;
  sumAngular: number;
  sumRelMag: number;
  nanCount: number;
}

export function layerMeans(layer: number, s: LayerStatSums): LayerScore {
  return {
    layer,
    tokens: s.tokens,
    blockInfluence: 1 - s.sumCos / s.tokens,
    angularDistance: s.sumAngular / s.tokens,
    relativeMagnitude: s.sumRelMag / s.tokens,
    nanCount: s.nanCount,
    sumCos: s.sumCos,
    sumAngular: s.sumAngular,
    sumRelMag: s.sumRelMag,
  };
}

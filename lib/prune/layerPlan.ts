/**
 * Which layers survive a removal and where each lands: the one place that turns a user's list of
 * 0-based layer indices into the old -> new mapping every other step of the rewrite uses.
 */
import { ShortGptError } from '../errors';

/** Which layers a rewrite keeps and the old -> new index of each. */
export interface LayerPlan {
  /** num_hidden_layers of the source. */
  sourceLayers: number;
  /** Removed indices, ascending, unique. */
  removed: number[];
  /** Kept source indices, ascending; kept[newIndex] = oldIndex. */
  kept: number[];
  /** oldIndex -> newIndex for every kept layer (removed layers are absent). */
  mapping: Map<number, number>;
}

/**
 * Validates `removeLayers` against a model of `sourceLayers` layers. Duplicates are merged;
 * an empty list, an index outside [0, sourceLayers) or removing every layer is an error naming
 * the index and the valid range, since a silent no-op or an empty model is never what was meant.
 */
export function planLayerRemoval(sourceLayers: number, removeLayers: readonly number[], what = 'removeLayers'): LayerPlan {
  if (!Number.isSafeInteger(sourceLayers) || sourceLayers < 1) {
    throw new ShortGptError('ERR_CONFIG', `num_hidden_layers must be a positive integer, got ${sourceLayers}`);
  }
  if (removeLayers.length === 0) {
    throw new ShortGptError('ERR_NO_LAYERS_GIVEN', `${what} is empty: name at least one layer to remove (0-based, 0..${sourceLayers - 1})`);
  }
  for (const i of removeLayers) {
    if (!Number.isSafeInteger(i) || i < 0 || i >= sourceLayers) {
      throw new ShortGptError(
        'ERR_LAYER_INDEX',
        `${what}: layer ${String(i)} is out of range; this model has ${sourceLayers} layers, valid indices are 0..${sourceLayers - 1} (0-based)`,
      );
    }
  }
  const removed = [...new Set(removeLayers)].sort((a, b) => a - b);
  if (removed.length >= sourceLayers) {
    throw new ShortGptError('ERR_REMOVE_ALL_LAYERS', `${what}: removing all ${sourceLayers} layers would leave no model; keep at least one`);
  }
  const removedSet = new Set(removed);
  const kept: number[] = [];
  const mapping = new Map<number, number>();
  for (let old = 0; old < sourceLayers; old++) {
    if (removedSet.has(old)) continue;
    mapping.set(old, kept.length);
    kept.push(old);
  }
  return { sourceLayers, removed, kept, mapping };
}

/** "0->0, 2->1, 4->2": the mapping as people read it (CLI output, logs). */
export function formatMapping(plan: Pick<LayerPlan, 'kept'>): string {
  return plan.kept.map((old, neu) => `${old}->${neu}`).join(', ');
}

/**
 * What a pruned checkpoint records about its origin: `shortgpt.json` beside config.json, and
 * short string entries in every safetensors `__metadata__` (so a lone shard still says it).
 */
import type { LayerPlan } from './layerPlan';

export const PROVENANCE_FILE = 'shortgpt.json';

export interface Provenance {
  tool: 'shortgpt-native';
  version: string;
  createdAt: string;
  source: {
    dir: string;
    architecture: string;
    numHiddenLayers: number;
    /** The source's own shortgpt.json when it was itself pruned: the chain of removals. */
    provenance?: unknown;
  };
  removedLayers: number[];
  keptLayers: number[];
  /** Old (source) layer index -> new index, for every kept layer. */
  layerMapping: Record<string, number>;
  numHiddenLayers: number;
  configFieldsSliced: string[];
  configFieldsAdjusted: string[];
  metadata: Record<string, string>;
  /** Source entries not copied and why (links out of the folder, directory links, FIFOs, other weight files). */
  skippedFiles?: Array<{ path: string; reason: string }>;
}

/**
 * The `__metadata__` of an output file: the source's entries, plus ours. transformers refuses a
 * safetensors file whose metadata exists but lacks a known `format`, so one is added ('pt', what
 * HF checkpoints carry) when the source had none, since we always add metadata.
 */
export function safetensorsMetadata(source: Record<string, string>, plan: LayerPlan, extra: Record<string, string>): Record<string, string> {
  return {
    ...(source.format === undefined ? { format: 'pt' } : {}),
    ...source,
    'shortgpt.removed_layers': plan.removed.join(','),
    'shortgpt.source_layers': String(plan.sourceLayers),
    ...extra,
  };
}

export function layerMappingRecord(plan: LayerPlan): Record<string, number> {
  return Object.fromEntries(plan.kept.map((old, neu) => [String(old), neu]));
}

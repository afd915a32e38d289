/**
 * The same layer cut in other tools' terms.
 * - mergekit's passthrough merge rebuilds a model from `slices`, each `layer_range: [start, end)`
 *   of a source model (half-open, as in mergekit's examples: [0, 24] takes layers 0..23).
 * - llama.cpp's `llama-quantize --prune-layers 3,7,11` drops GGUF blocks by index and renumbers
 *   the rest (ggml-org/llama.cpp#13037); GGUF block n is HF layer n.
 */
import { ShortGptError } from '../errors';
import type { MergekitSlice } from './types';

/** Removed indices, validated, unique and sorted. */
export function normalizeRemoved(numLayers: number, removed: readonly number[]): number[] {
  for (const i of removed) {
    if (!Number.isSafeInteger(i) || i < 0 || i >= numLayers) {
      throw new ShortGptError('ERR_LAYER_INDEX', `layer ${String(i)} is out of range for a model of ${numLayers} layers (0..${numLayers - 1})`);
    }
  }
  return [...new Set(removed)].sort((a, b) => a - b);
}

/** Contiguous runs of kept layers as mergekit slices. */
export function mergekitSlices(numLayers: number, removed: readonly number[]): MergekitSlice[] {
  const gone = new Set(normalizeRemoved(numLayers, removed));
  const slices: MergekitSlice[] = [];
  let start = -1;
  for (let i = 0; i <= numLayers; i++) {
    const kept = i < numLayers && !gone.has(i);
    if (kept && start < 0) start = i;
    if (!kept && start >= 0) {
      slices.push({ layer_range: [start, i] });
      start = -1;
    }
  }
  return slices;
}

export function llamaCppPruneLayers(removed: readonly number[]): number[] {
  return [...new Set(removed)].sort((a, b) => a - b);
}

/** A mergekit passthrough config (YAML) that builds the pruned model from `source`. */
export function mergekitYaml(source: string, slices: readonly MergekitSlice[]): string {
  const model = /^[\w./-]+$/.test(source) ? source : JSON.stringify(source);
  const lines = ['slices:'];
  for (const s of slices) {
    lines.push('  - sources:', `      - model: ${model}`, `        layer_range: [${s.layer_range[0]}, ${s.layer_range[1]}]`);
  }
  lines.push('merge_method: passthrough');
  return lines.join('\n');
}

/** [2, 3, 4, 9] -> "2-4, 9": a removal list as people read it. */
export function formatLayerList(layers: readonly number[]): string {
  const sorted = [...new Set(layers)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; i++) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(j > i + 1 ? `${sorted[i]}-${sorted[j]}` : j === i + 1 ? `${sorted[i]}, ${sorted[j]}` : `${sorted[i]}`);
    i = j;
  }
  return parts.join(', ');
}

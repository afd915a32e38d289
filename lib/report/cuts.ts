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

/** The removed layers as llama.cpp `llama-quantize --prune-layers` takes them (0-based indices, ascending). */
export function llamaCppPruneLayers(removed: readonly number[]): number[] {
  return [...new Set(removed)].sort((a, b) => a - b);
}

/** The file in a pruned checkpoint's directory that rebuilds it with `mergekit-yaml`. */
export const MERGEKIT_YAML = 'mergekit.yaml';

/** safetensors dtype -> the name mergekit's `dtype:` takes (torch dtype names). */
const MERGEKIT_DTYPES: Record<string, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/**
 * mergekit's `dtype:` for a checkpoint whose floating-point tensors have these safetensors
 * dtypes: the one dtype they share, or undefined when they are mixed (e.g. F32 norms beside BF16
 * matrices), where a single `dtype:` would convert some tensors and the rebuild would differ.
 */
export function mergekitDtype(dtypes: Iterable<string>): string | undefined {
  const floats = new Set([...dtypes].filter((d) => d.startsWith('F') || d === 'BF16'));
  if (floats.size !== 1) return undefined;
  return MERGEKIT_DTYPES[[...floats][0]];
}

/** mergekitDtype of a checkpoint's tensors: the one `dtype:` mergekit.yaml, report.md and --dry-run all show. */
export function checkpointMergekitDtype(ckpt: { tensors: ReadonlyMap<string, { dtype: string }> }): string | undefined {
  return mergekitDtype([...ckpt.tensors.values()].map((t) => t.dtype));
}

/** A model path or hub id as a YAML scalar: plain where that is unambiguous, else double-quoted. */
function yamlScalar(s: string): string {
  const plain = /^[\w./-]+$/.test(s) && !/^(true|false|yes|no|on|off|null|~|[-+]?[\d.]+(e[-+]?\d+)?)$/i.test(s) && !s.startsWith('-');
  // A JSON string is a valid YAML double-quoted scalar (same escapes).
  return plain ? s : JSON.stringify(s);
}

/**
 * A mergekit passthrough config (YAML) that builds the pruned model from `source` (a local
 * directory or a hub id): one slice per contiguous run of kept layers; embeddings, final norm and
 * head come with the first and last slices. `dtype` (mergekit's name, e.g. bfloat16) keeps the
 * output in the source's dtype.
 */
export function mergekitYaml(source: string, slices: readonly MergekitSlice[], opts: { dtype?: string } = {}): string {
  // mergekit reads a model string as PATH[@REVISION][+LORA]; a path holding '@' or '+' goes in
  // the structured form (model: {path: ...}) so it is read as one path.
  const model = /[@+]/.test(source) ? ['', '          model:', `            path: ${yamlScalar(source)}`] : [` ${yamlScalar(source)}`];
  const lines = ['slices:'];
  for (const s of slices) {
    lines.push('  - sources:', `      - model:${model[0]}`, ...model.slice(1), `        layer_range: [${s.layer_range[0]}, ${s.layer_range[1]}]`);
  }
  lines.push('merge_method: passthrough');
  if (opts.dtype !== undefined) lines.push(`dtype: ${opts.dtype}`);
  return lines.join('\n');
}

/** mergekit.yaml as written beside a pruned checkpoint: how to run it, then the config. */
export function mergekitFile(source: string, numLayers: number, removed: readonly number[], opts: { dtype?: string; tool?: string } = {}): string {
  const gone = normalizeRemoved(numLayers, removed);
  return [
    `# Rebuilds this pruned checkpoint from its source with mergekit's passthrough merge:`,
    `#   mergekit-yaml ${MERGEKIT_YAML} OUTPUT_DIR`,
    `# The source has ${numLayers} layers; removed (0-based): ${formatLayerList(gone)}.`,
    `# Each slice takes the source's layers [start, end) (end exclusive); the slices' layers are`,
    `# numbered consecutively in the output.`,
    ...(opts.tool ? [`# Written by ${opts.tool}.`] : []),
    mergekitYaml(source, mergekitSlices(numLayers, gone), { dtype: opts.dtype }),
    '',
  ].join('\n');
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

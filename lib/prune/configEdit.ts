/**
 * config.json after a layer removal. Only what depends on the layer count changes; every other
 * field, its order and its value are kept as the source wrote them.
 */
import type { LayerPlan } from './layerPlan';

export interface ConfigEdit {
  config: Record<string, unknown>;
  /** Top-level list fields sliced to the kept layers (e.g. layer_types, mlp_layer_types). */
  slicedFields: string[];
  /** Other fields rewritten because their meaning depends on layer indices. */
  adjustedFields: string[];
}

/**
 * Top-level arrays that may happen to have num_hidden_layers entries but are not per-layer:
 * slicing them would corrupt the config (e.g. two eos ids on a two-layer model).
 */
const NOT_PER_LAYER = new Set(['architectures', 'eos_token_id', 'bos_token_id', 'pad_token_id', 'bad_words_ids', 'suppress_tokens', 'begin_suppress_tokens', 'forced_decoder_ids', 'auto_map']);

/**
 * Returns the edited config (a new object; `raw` is not modified):
 * - num_hidden_layers = kept layer count;
 * - every top-level array with exactly num_hidden_layers entries (HF's per-layer lists:
 *   layer_types, mlp_layer_types, sliding-window flags, ...) keeps only the kept layers' entries,
 *   in order. Nested objects (rope_scaling factor lists and the like) are not per-layer, so only
 *   the top level is considered;
 * - max_window_layers (Qwen2/Qwen3: layer i uses sliding attention iff i >= max_window_layers)
 *   becomes the number of kept layers below the old boundary, which gives every kept layer the
 *   same attention kind it had before, since kept layers stay in order.
 */
export function editConfig(raw: Record<string, unknown>, plan: LayerPlan): ConfigEdit {
  const config: Record<string, unknown> = {};
  // Defined, not assigned: `config['__proto__'] = v` would set the prototype and the key would
  // vanish from the written config.json (JSON.parse makes it an ordinary own key).
  const set = (key: string, value: unknown) => Object.defineProperty(config, key, { value, enumerable: true, writable: true, configurable: true });
  const slicedFields: string[] = [];
  const adjustedFields: string[] = [];
  for (const [key, value] of Object.entries(raw)) {
    if (key === 'num_hidden_layers') {
      set(key, plan.kept.length);
    } else if (Array.isArray(value) && value.length === plan.sourceLayers && !NOT_PER_LAYER.has(key)) {
      set(key, plan.kept.map((old) => value[old] as unknown));
      slicedFields.push(key);
    } else if (key === 'max_window_layers' && typeof value === 'number' && value > 0 && value < plan.sourceLayers) {
      // A boundary at or beyond the last layer (common in Qwen2 configs) already holds for any
      // subset, so it is left as written.
      const adjusted = plan.kept.filter((old) => old < value).length;
      set(key, adjusted);
      if (adjusted !== value) adjustedFields.push(key);
    } else {
      set(key, value);
    }
  }
  if (!Object.prototype.hasOwnProperty.call(raw, 'num_hidden_layers')) set('num_hidden_layers', plan.kept.length);
  return { config, slicedFields, adjustedFields };
}

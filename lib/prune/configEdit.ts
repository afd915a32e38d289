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
const NOT_PER_LAYER = new Set(['architectures', 'eos_token_id', 'bos_token_id', 'pad_token_id', 'bad_words_ids', 'suppress_tokens', 'begin_suppress_tokens', 'forced_decoder_ids', 'auto_map',
  // Qwen3-MoE: layer indices, not one entry per layer (rewritten by qwen3MoeDenseLayers).
  'mlp_only_layers']);

/**
 * Returns the edited config (a new object; `raw` is not modified):
 * - num_hidden_layers = kept layer count;
 * - every top-level array with exactly num_hidden_layers entries (HF's per-layer lists:
 *   layer_types, mlp_layer_types, sliding-window flags, ...) keeps only the kept layers' entries,
 *   in order. Nested objects (rope_scaling factor lists and the like) are not per-layer, so only
 *   the top level is considered;
 * - max_window_layers (Qwen2/Qwen3: layer i uses sliding attention iff i >= max_window_layers)
 *   becomes the number of kept layers below the old boundary, which gives every kept layer the
 *   same attention kind it had before, since kept layers stay in order;
 * - SmolLM3 without a no_rope_layers list (derived from no_rope_layer_interval, a period that a
 *   removal breaks) gets the explicit list of the kept layers (see smolLm3NoRopeLayers); Gemma 2/3
 *   without layer_types (derived from a sliding/full period) get theirs (gemmaLayerTypes);
 * - Qwen3-MoE's dense layers (mlp_only_layers, decoder_sparse_step) become an explicit
 *   mlp_only_layers of new indices with decoder_sparse_step 1 (qwen3MoeDenseLayers).
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
  const noRope = smolLm3NoRopeLayers(raw, plan);
  if (noRope) {
    set('no_rope_layers', noRope);
    adjustedFields.push('no_rope_layers');
  }
  const dense = qwen3MoeDenseLayers(raw, plan);
  if (dense) {
    if (raw.decoder_sparse_step !== undefined && raw.decoder_sparse_step !== 1) {
      set('decoder_sparse_step', 1);
      adjustedFields.push('decoder_sparse_step');
    }
    if (JSON.stringify(dense) !== JSON.stringify(raw.mlp_only_layers ?? [])) {
      set('mlp_only_layers', dense);
      adjustedFields.push('mlp_only_layers');
    }
  }
  const layerTypes = gemmaLayerTypes(raw, plan);
  if (layerTypes) {
    set('layer_types', layerTypes);
    adjustedFields.push('layer_types');
  }
  return { config, slicedFields, adjustedFields };
}

/**
 * Qwen3MoeDecoderLayer makes layer i sparse iff i is not in mlp_only_layers, num_experts > 0 and
 * (i + 1) % decoder_sparse_step == 0. After a removal the period would put experts on other
 * layers, and mlp_only_layers names old indices: returns the kept dense layers' new indices (to
 * be written with decoder_sparse_step 1), or null when the config is not Qwen3-MoE's. Bad values
 * were refused when the checkpoint was opened (lib/checkpoint/config.ts).
 */
function qwen3MoeDenseLayers(raw: Record<string, unknown>, plan: LayerPlan): number[] | null {
  if (raw.model_type !== 'qwen3_moe' && architectureOf(raw) !== 'Qwen3MoeForCausalLM') return null;
  const experts = typeof raw.num_experts === 'number' ? raw.num_experts : 128;
  const step = typeof raw.decoder_sparse_step === 'number' ? raw.decoder_sparse_step : 1;
  const only = Array.isArray(raw.mlp_only_layers) ? raw.mlp_only_layers : [];
  const dense = (i: number): boolean => only.includes(i) || experts <= 0 || (i + 1) % step !== 0;
  return plan.kept.flatMap((old, neu) => (dense(old) ? [neu] : []));
}

function architectureOf(raw: Record<string, unknown>): unknown {
  return Array.isArray(raw.architectures) ? raw.architectures[0] : undefined;
}

/**
 * Gemma2Config builds layer_types as sliding, full, sliding, ... and Gemma3TextConfig makes every
 * sliding_window_pattern-th layer (default 6) full, when the config has no list. Each kept layer
 * must keep its own attention type (and, in Gemma 3, its RoPE base), which the period would not
 * give the smaller model: returns the explicit list for the kept layers, or null when the config
 * is not Gemma's or already lists them (then sliced like any per-layer list).
 */
function gemmaLayerTypes(raw: Record<string, unknown>, plan: LayerPlan): string[] | null {
  const arch = architectureOf(raw);
  const gemma2 = raw.model_type === 'gemma2' || arch === 'Gemma2ForCausalLM';
  const gemma3 = raw.model_type === 'gemma3_text' || arch === 'Gemma3ForCausalLM';
  if (!gemma2 && !gemma3) return null;
  if (raw.layer_types !== undefined && raw.layer_types !== null) return null;
  const pattern = gemma3 ? (typeof raw.sliding_window_pattern === 'number' ? raw.sliding_window_pattern : 6) : 2;
  return plan.kept.map((old) => ((old + 1) % pattern !== 0 ? 'sliding_attention' : 'full_attention'));
}

/**
 * SmolLM3Config builds no_rope_layers (1: the layer applies RoPE) as
 * int((i + 1) % no_rope_layer_interval != 0) when the config has no list. Kept layers must keep
 * their own choice, which the interval of the smaller model would not give: returns the explicit
 * list for the kept layers, or null when the config is not SmolLM3's or already lists them (the
 * list is then sliced like any per-layer list).
 */
function smolLm3NoRopeLayers(raw: Record<string, unknown>, plan: LayerPlan): number[] | null {
  const arch = architectureOf(raw);
  if (raw.model_type !== 'smollm3' && arch !== 'SmolLM3ForCausalLM') return null;
  if (raw.no_rope_layers !== undefined && raw.no_rope_layers !== null) return null;
  // A bad interval was refused when the checkpoint was opened (lib/checkpoint/config.ts).
  const interval = typeof raw.no_rope_layer_interval === 'number' ? raw.no_rope_layer_interval : 4;
  return plan.kept.map((old) => ((old + 1) % interval !== 0 ? 1 : 0));
}

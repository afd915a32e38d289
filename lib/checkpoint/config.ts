/**
 * config.json resolved once into a ModelConfig. Every default lives here (candle's
 * `LlamaConfig::into_config` idea); nothing downstream reads raw JSON. Defaults follow the
 * transformers configuration classes (LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config,
 * Baichuan's remote-code BaichuanConfig, GraniteConfig, SmolLM3Config, Olmo2Config, Phi3Config,
 * Gemma2Config, Gemma3TextConfig, MixtralConfig, Qwen3MoeConfig; transformers 5.x).
 */
import { ShortGptError } from '../errors';
import { printable, quoted } from '../util/printable';
import type { Architecture, ModelConfig, RopeScaling } from './types';

/** The config.json `architectures` the engine runs (others are refused with ERR_UNSUPPORTED_ARCHITECTURE). */
export const SUPPORTED_ARCHITECTURES: readonly Architecture[] = [
  'LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM', 'BaichuanForCausalLM',
  'GraniteForCausalLM', 'SmolLM3ForCausalLM', 'Olmo2ForCausalLM', 'Phi3ForCausalLM', 'Gemma2ForCausalLM', 'Gemma3ForCausalLM',
  'MixtralForCausalLM', 'Qwen3MoeForCausalLM',
];

/** Per-architecture defaults for fields a config.json may omit (transformers' class defaults). */
const DEFAULTS: Record<Architecture, { maxPositionEmbeddings: number; slidingWindow: number; maxWindowLayers: number }> = {
  LlamaForCausalLM: { maxPositionEmbeddings: 2048, slidingWindow: 0, maxWindowLayers: 0 },
  MistralForCausalLM: { maxPositionEmbeddings: 4096 * 32, slidingWindow: 4096, maxWindowLayers: 0 },
  Qwen2ForCausalLM: { maxPositionEmbeddings: 32768, slidingWindow: 4096, maxWindowLayers: 28 },
  Qwen3ForCausalLM: { maxPositionEmbeddings: 32768, slidingWindow: 4096, maxWindowLayers: 28 },
  BaichuanForCausalLM: { maxPositionEmbeddings: 4096, slidingWindow: 0, maxWindowLayers: 0 },
  GraniteForCausalLM: { maxPositionEmbeddings: 2048, slidingWindow: 0, maxWindowLayers: 0 },
  SmolLM3ForCausalLM: { maxPositionEmbeddings: 32768, slidingWindow: 0, maxWindowLayers: 0 },
  Olmo2ForCausalLM: { maxPositionEmbeddings: 2048, slidingWindow: 0, maxWindowLayers: 0 },
  Phi3ForCausalLM: { maxPositionEmbeddings: 4096, slidingWindow: 0, maxWindowLayers: 0 },
  Gemma2ForCausalLM: { maxPositionEmbeddings: 8192, slidingWindow: 4096, maxWindowLayers: 0 },
  Gemma3ForCausalLM: { maxPositionEmbeddings: 131072, slidingWindow: 4096, maxWindowLayers: 0 },
  MixtralForCausalLM: { maxPositionEmbeddings: 4096 * 32, slidingWindow: 0, maxWindowLayers: 0 },
  Qwen3MoeForCausalLM: { maxPositionEmbeddings: 32768, slidingWindow: 4096, maxWindowLayers: 0 },
};
const DEFAULT_ROPE_THETA = 10000;
/** SmolLM3Config.default_theta: the RoPE base when the config names none. */
const SMOLLM3_ROPE_THETA = 2000000;
const DEFAULT_RMS_NORM_EPS = 1e-6;

/** Other spellings seen in the wild, and model_type -> class for configs without `architectures`. */
const ALIASES: Record<string, Architecture> = {
  BaiChuanForCausalLM: 'BaichuanForCausalLM', // Baichuan 1 7B spells it this way
};
const BY_MODEL_TYPE: Record<string, Architecture> = {
  llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM', qwen3: 'Qwen3ForCausalLM', baichuan: 'BaichuanForCausalLM',
  granite: 'GraniteForCausalLM', smollm3: 'SmolLM3ForCausalLM', olmo2: 'Olmo2ForCausalLM', phi3: 'Phi3ForCausalLM',
  gemma2: 'Gemma2ForCausalLM', gemma3_text: 'Gemma3ForCausalLM', mixtral: 'MixtralForCausalLM', qwen3_moe: 'Qwen3MoeForCausalLM',
};

/**
 * Tables keyed by strings from config.json are read only through own properties: a plain object
 * lookup of 'constructor', 'toString' or '__proto__' finds Object.prototype's members instead.
 */
function own<V>(table: Record<string, V>, key: string): V | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

/**
 * A config value as a message shows it. JSON.stringify writes Infinity (what JSON.parse makes of
 * 1e400) and NaN as `null`, which would blame a value the file never held.
 */
export function describeValue(v: unknown): string {
  if (typeof v === 'number' && !Number.isFinite(v)) {
    return Number.isNaN(v) ? 'NaN' : `${v > 0 ? '' : '-'}a number beyond the float64 range (e.g. 1e400, read as ${v})`;
  }
  if (v === undefined) return 'nothing';
  let text: string;
  try {
    text = JSON.stringify(v);
  } catch {
    // JSON.parse accepts nesting deeper than JSON.stringify can recurse (found by npm run fuzz).
    return `a ${Array.isArray(v) ? 'list' : 'value'} nested too deep to show`;
  }
  return printable(text.length > 200 ? `${text.slice(0, 200)}...` : text);
}

class Reader {
  constructor(readonly raw: Record<string, unknown>, readonly file: string) {}

  error(field: string, what: string): ShortGptError {
    return new ShortGptError('ERR_CONFIG', `${this.file}: field '${field}' ${what}`);
  }

  has(field: string): boolean {
    return this.raw[field] !== undefined && this.raw[field] !== null;
  }

  positiveInt(field: string, fallback?: number): number {
    const v = this.raw[field];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw this.error(field, 'is required (a positive integer)');
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw this.error(field, `must be a positive integer, got ${describeValue(v)}`);
    return v;
  }

  positiveNumber(field: string, fallback: number): number {
    const v = this.raw[field];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw this.error(field, `must be a positive number, got ${describeValue(v)}`);
    return v;
  }

  nonNegativeInt(field: string): number {
    const v = this.raw[field];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw this.error(field, `must be a non-negative integer, got ${describeValue(v)}`);
    return v;
  }

  bool(field: string, fallback: boolean): boolean {
    const v = this.raw[field];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw this.error(field, `must be true or false, got ${describeValue(v)}`);
    return v;
  }

  tokenId(field: string): number | null {
    const v = this.raw[field];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw this.error(field, `must be a token id, got ${describeValue(v)}`);
    return v;
  }
}

function unsupported(file: string, message: string): ShortGptError {
  return new ShortGptError('ERR_UNSUPPORTED_ARCHITECTURE', `${file}: ${message}`);
}

function resolveArchitecture(r: Reader): Architecture {
  const archs = r.raw.architectures;
  if (archs === undefined || archs === null) {
    const mt = r.raw.model_type;
    const byType = typeof mt === 'string' ? own(BY_MODEL_TYPE, mt) : undefined;
    if (byType) return byType;
    throw r.error('architectures', `is required (one of ${SUPPORTED_ARCHITECTURES.join(', ')})`);
  }
  if (!Array.isArray(archs) || archs.length === 0 || typeof archs[0] !== 'string') {
    throw r.error('architectures', `must be a non-empty list of class names, got ${describeValue(archs)}`);
  }
  const name = archs[0];
  const arch = (SUPPORTED_ARCHITECTURES as readonly string[]).includes(name) ? (name as Architecture) : own(ALIASES, name);
  if (!arch) throw unsupported(r.file, `architecture ${quoted(name)} is not supported; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`);
  return arch;
}

/**
 * rope_scaling (or the newer `rope_parameters`): null, absent or type 'default' mean plain RoPE.
 * transformers accepts the kind under `rope_type` or the older `type`.
 */
function resolveRopeScaling(r: Reader, maxPositionEmbeddings: number): RopeScaling {
  const field = r.has('rope_scaling') ? 'rope_scaling' : 'rope_parameters';
  const v = r.raw[field];
  if (v === undefined || v === null) return { type: 'none' };
  if (typeof v !== 'object' || Array.isArray(v)) throw r.error(field, `must be an object or null, got ${describeValue(v)}`);
  const o = v as Record<string, unknown>;
  const kind = o.rope_type ?? o.type ?? 'default';
  const num = (key: string, fallback?: number): number => {
    const x = o[key] ?? fallback;
    if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) throw r.error(`${field}.${key}`, `must be a positive number, got ${describeValue(o[key])}`);
    return x;
  };
  if (kind === 'default') return { type: 'none' };
  if (kind === 'linear') return { type: 'linear', factor: num('factor') };
  if (kind === 'llama3') {
    return {
      type: 'llama3',
      factor: num('factor'),
      lowFreqFactor: num('low_freq_factor'),
      highFreqFactor: num('high_freq_factor'),
      originalMaxPositionEmbeddings: num('original_max_position_embeddings', maxPositionEmbeddings),
    };
  }
  const key = o.rope_type !== undefined ? 'rope_type' : 'type';
  throw new ShortGptError('ERR_UNSUPPORTED_ROPE_SCALING', `${r.file}: field '${field}.${key}' is ${describeValue(kind)}; supported: default (or null), linear, llama3`);
}

/**
 * Qwen2/Qwen3 use a sliding window only with `use_sliding_window: true`, and then only on layers
 * whose `layer_types` entry is 'sliding_attention' (older configs: layers >= max_window_layers).
 * The engine takes one window for all layers, so a mix is refused rather than run wrongly.
 */
function resolveQwenSlidingWindow(r: Reader, arch: Architecture, layers: number): number | null {
  if (!r.bool('use_sliding_window', false)) return null;
  const window = r.positiveInt('sliding_window', DEFAULTS[arch].slidingWindow);
  // Counted, not listed per layer: `layers` is only checked against the tensors later, so an
  // array of that length here could be as large as config.json claims.
  let slidingLayers: number;
  const types = r.raw.layer_types;
  if (types !== undefined && types !== null) {
    // Its length was checked against num_hidden_layers by checkPerLayerLists.
    if (!Array.isArray(types) || !types.every((t) => t === 'full_attention' || t === 'sliding_attention')) {
      throw r.error('layer_types', `must list 'full_attention' or 'sliding_attention' for each of the ${layers} layers`);
    }
    slidingLayers = types.filter((t) => t === 'sliding_attention').length;
  } else {
    const from = r.has('max_window_layers') ? r.nonNegativeInt('max_window_layers') : DEFAULTS[arch].maxWindowLayers;
    slidingLayers = Math.max(0, layers - from);
  }
  if (slidingLayers === layers) return window;
  if (slidingLayers === 0) return null;
  throw unsupported(r.file, `use_sliding_window with a window on only some layers (${slidingLayers} of ${layers}) is not supported; the engine applies one attention window to every layer`);
}

/**
 * transformers' per-layer lists (one entry per decoder layer). The rewrite slices a list of
 * num_hidden_layers entries to the kept layers; one of another length would be copied unchanged
 * and then describe layers the output does not have, so it is refused here, naming both lengths.
 */
const PER_LAYER_LISTS = ['layer_types', 'mlp_layer_types', 'no_rope_layers'];

function checkPerLayerLists(r: Reader, layers: number): void {
  for (const field of PER_LAYER_LISTS) {
    const v = r.raw[field];
    if (v === undefined || v === null) continue;
    if (!Array.isArray(v)) throw r.error(field, `must be a list with one entry per layer, got ${describeValue(v)}`);
    if (v.length !== layers) {
      throw r.error(field, `has ${v.length} entries, but num_hidden_layers is ${layers}; it must have one entry per layer`);
    }
  }
}

/**
 * SmolLM3 (modeling_smollm3.py): layer i applies RoPE iff `no_rope_layers[i]` is truthy (the
 * name is the opposite of its meaning); without the list, SmolLM3Config builds it as
 * (i + 1) % no_rope_layer_interval != 0, i.e. every interval-th layer has no RoPE. Returns the
 * layers without RoPE, ascending.
 */
function resolveNoRopeLayers(r: Reader, layers: number): number[] {
  const v = r.raw.no_rope_layers;
  if (v === undefined || v === null) {
    const interval = r.positiveInt('no_rope_layer_interval', 4);
    const out: number[] = [];
    for (let i = interval - 1; i < layers; i += interval) out.push(i);
    return out;
  }
  // Its length was checked against num_hidden_layers by checkPerLayerLists.
  const list = v as unknown[];
  if (!list.every((x) => x === 0 || x === 1 || x === true || x === false)) {
    throw r.error('no_rope_layers', `must hold 1 (RoPE) or 0 (no RoPE) for each of the ${layers} layers, got ${describeValue(v)}`);
  }
  return list.flatMap((x, i) => (x === 0 || x === false ? [i] : []));
}

/**
 * SmolLM3's sliding window: with use_sliding_window, on the layers `layer_types` marks
 * 'sliding_attention' (SmolLM3Config derives the list when absent: the no-RoPE layers, if
 * sliding_window is set). One window for every layer or none; a mix is refused, as for Qwen.
 */
function resolveSmolLm3SlidingWindow(r: Reader, layers: number, noRope: number[]): number | null {
  if (!r.bool('use_sliding_window', false) || !r.has('sliding_window')) return null;
  const window = r.positiveInt('sliding_window');
  const types = r.raw.layer_types;
  let sliding: number;
  if (types !== undefined && types !== null) {
    if (!Array.isArray(types) || !types.every((t) => t === 'full_attention' || t === 'sliding_attention')) {
      throw r.error('layer_types', `must list 'full_attention' or 'sliding_attention' for each of the ${layers} layers`);
    }
    sliding = types.filter((t) => t === 'sliding_attention').length;
  } else {
    sliding = noRope.length;
  }
  if (sliding === layers) return window;
  if (sliding === 0) return null;
  throw unsupported(r.file, `use_sliding_window with a window on only some layers (${sliding} of ${layers}) is not supported; the engine applies one attention window to every layer`);
}

/**
 * Phi3Config's RoPE: `partial_rotary_factor` (in rope_parameters / rope_scaling, else top level,
 * else 1) gives the rotated dimensions int(head_dim * factor); rope type 'longrope' ('su' and
 * 'yarn' are read as 'longrope', as Phi3Config.convert_rope_params_to_dict does) takes
 * short_factor / long_factor lists of rotaryDim / 2 entries, the top-level
 * original_max_position_embeddings (Phi3Config default 4096; it wins over the one inside, as
 * standardize_rope_params does), `factor` (default max_position_embeddings / original) and
 * `attention_factor` (default sqrt(1 + ln(factor) / ln(original)), or 1 when factor <= 1).
 */
function resolvePhi3Rope(r: Reader, headDim: number, maxPositionEmbeddings: number): { rotaryDim: number; scaling: RopeScaling } {
  const field = r.has('rope_scaling') ? 'rope_scaling' : 'rope_parameters';
  const v = r.raw[field];
  if (v !== undefined && v !== null && (typeof v !== 'object' || Array.isArray(v))) throw r.error(field, `must be an object or null, got ${describeValue(v)}`);
  const o = (v ?? {}) as Record<string, unknown>;
  const inner = new Reader(o, r.file);
  const prf = o.partial_rotary_factor !== undefined ? inner.positiveNumber('partial_rotary_factor', 1) : r.positiveNumber('partial_rotary_factor', 1);
  const rotaryDim = Math.floor(headDim * prf);
  if (prf > 1 || rotaryDim < 2 || rotaryDim % 2 !== 0) {
    throw r.error('partial_rotary_factor', `(${prf}) must give an even number of rotary dimensions in [2, head_dim ${headDim}], got ${rotaryDim}`);
  }
  const kind = o.rope_type ?? o.type ?? 'default';
  if (kind === 'default') return { rotaryDim, scaling: { type: 'none' } };
  if (kind !== 'longrope' && kind !== 'su' && kind !== 'yarn') {
    const key = o.rope_type !== undefined ? 'rope_type' : 'type';
    throw new ShortGptError('ERR_UNSUPPORTED_ROPE_SCALING', `${r.file}: field '${field}.${key}' is ${describeValue(kind)}; Phi3ForCausalLM supports default and longrope`);
  }
  const factors = (key: string): number[] => {
    const list = o[key];
    if (!Array.isArray(list) || list.length !== rotaryDim / 2 || !list.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)) {
      throw r.error(`${field}.${key}`, `must be a list of ${rotaryDim / 2} positive numbers (one per rotary frequency), got ${describeValue(list)}`);
    }
    return list as number[];
  };
  const original = r.positiveInt('original_max_position_embeddings', 4096);
  const factor = o.factor !== undefined && o.factor !== null ? inner.positiveNumber('factor', 1) : maxPositionEmbeddings / original;
  const attentionFactor = o.attention_factor !== undefined && o.attention_factor !== null ? inner.positiveNumber('attention_factor', 1)
    : factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(original));
  return {
    rotaryDim,
    scaling: { type: 'longrope', shortFactor: factors('short_factor'), longFactor: factors('long_factor'), originalMaxPositionEmbeddings: original, attentionFactor },
  };
}

const isGemma = (a: Architecture): boolean => a === 'Gemma2ForCausalLM' || a === 'Gemma3ForCausalLM';

/** A soft-capping value: null/absent (none, when the default is null) or a positive number. */
function softcap(r: Reader, field: string, fallback: number | null): number | null {
  if (!Object.hasOwn(r.raw, field)) return fallback;
  if (r.raw[field] === null) return null;
  return r.positiveNumber(field, 1);
}

/**
 * Gemma2Config / Gemma3TextConfig: `layer_types` (else Gemma 2 alternates sliding, full, ...;
 * Gemma 3 makes every `sliding_window_pattern`-th layer (default 6) full), sliding_window
 * (default 4096; null: none), query_pre_attn_scalar (default 256), the soft-capping values
 * (Gemma 2: 50 and 30; Gemma 3: none), and Gemma 3's RoPE per layer type: full-attention layers
 * take rope_theta (default 1e6) and rope_scaling, sliding ones rope_local_base_freq (default
 * 10000) unscaled; transformers 5's nested rope_parameters {full_attention, sliding_attention}
 * say the same.
 */
function resolveGemma(r: Reader, architecture: Architecture, layers: number, hiddenSize: number, maxPositionEmbeddings: number): {
  gemma: NonNullable<ModelConfig['gemma']>; slidingWindow: number | null; ropeTheta: number | null; ropeScaling: RopeScaling | null;
} {
  const gemma3 = architecture === 'Gemma3ForCausalLM';
  const act = r.raw.hidden_activation ?? 'gelu_pytorch_tanh';
  if (act !== 'gelu_pytorch_tanh') throw unsupported(r.file, `field 'hidden_activation' is ${describeValue(act)}; only 'gelu_pytorch_tanh' (GeGLU) is supported`);
  if (r.bool('use_bidirectional_attention', false)) throw unsupported(r.file, "field 'use_bidirectional_attention' is true; only causal attention is supported");
  let types: unknown[];
  if (r.has('layer_types')) {
    types = r.raw.layer_types as unknown[]; // length checked by checkPerLayerLists
    if (!types.every((t) => t === 'full_attention' || t === 'sliding_attention')) {
      throw r.error('layer_types', `must list 'full_attention' or 'sliding_attention' for each of the ${layers} layers`);
    }
  } else {
    const pattern = gemma3 ? r.positiveInt('sliding_window_pattern', 6) : 2;
    types = Array.from({ length: layers }, (_, i) => ((i + 1) % pattern ? 'sliding_attention' : 'full_attention'));
  }
  const window = r.raw.sliding_window === null ? null : r.positiveInt('sliding_window', 4096);
  const fullAttentionLayers = types.flatMap((t, i) => (t === 'full_attention' ? [i] : []));
  const slidingWindow = window !== null && fullAttentionLayers.length < layers ? window : null;
  let ropeTheta: number | null = null;
  let ropeScaling: RopeScaling | null = null;
  let localRopeTheta: number | null = null;
  if (gemma3) {
    const rp = r.raw.rope_parameters;
    const nested = typeof rp === 'object' && rp !== null && !Array.isArray(rp) && ('full_attention' in rp || 'sliding_attention' in rp)
      ? rp as Record<string, unknown> : null;
    const sub = (key: string): Record<string, unknown> | null => {
      const v = nested?.[key];
      if (v === undefined || v === null) return null;
      if (typeof v !== 'object' || Array.isArray(v)) throw r.error(`rope_parameters.${key}`, `must be an object, got ${describeValue(v)}`);
      return v as Record<string, unknown>;
    };
    const full = sub('full_attention');
    const local = sub('sliding_attention');
    ropeTheta = full?.rope_theta !== undefined ? new Reader(full, r.file).positiveNumber('rope_theta', 1e6) : r.positiveNumber('rope_theta', 1e6);
    localRopeTheta = local?.rope_theta !== undefined ? new Reader(local, r.file).positiveNumber('rope_theta', 1e4) : r.positiveNumber('rope_local_base_freq', 1e4);
    const localKind = local?.rope_type ?? local?.type ?? 'default';
    if (localKind !== 'default') {
      throw new ShortGptError('ERR_UNSUPPORTED_ROPE_SCALING', `${r.file}: field 'rope_parameters.sliding_attention.rope_type' is ${describeValue(localKind)}; Gemma 3's sliding layers are supported with default RoPE only`);
    }
    if (nested) ropeScaling = resolveRopeScaling(new Reader({ rope_scaling: full ?? null }, r.file), maxPositionEmbeddings);
  }
  return {
    gemma: {
      // GemmaTextScaledWordEmbedding: embed_scale = hidden_size ** 0.5 (rounded to the weights' dtype by the engine).
      embeddingScale: Math.sqrt(hiddenSize),
      attentionScale: r.positiveNumber('query_pre_attn_scalar', 256) ** -0.5,
      attnLogitSoftcapping: softcap(r, 'attn_logit_softcapping', gemma3 ? null : 50),
      finalLogitSoftcapping: softcap(r, 'final_logit_softcapping', gemma3 ? null : 30),
      fullAttentionLayers,
      localRopeTheta,
    },
    slidingWindow,
    ropeTheta,
    ropeScaling,
  };
}

/**
 * MixtralConfig: num_local_experts (8), num_experts_per_tok (2), experts of intermediate_size,
 * top-k weights always renormalised (MixtralTopKRouter). Qwen3MoeConfig: num_experts (128),
 * num_experts_per_tok (8), moe_intermediate_size (768), norm_topk_prob (false); layer i is sparse
 * iff it is not in mlp_only_layers and num_experts > 0 and (i + 1) % decoder_sparse_step == 0
 * (Qwen3MoeDecoderLayer), else an ordinary MLP of intermediate_size.
 */
function resolveMoe(r: Reader, architecture: Architecture, layers: number, intermediateSize: number): NonNullable<ModelConfig['moe']> {
  if (architecture === 'MixtralForCausalLM') {
    const numExperts = r.positiveInt('num_local_experts', 8);
    const topK = r.positiveInt('num_experts_per_tok', 2);
    if (topK > numExperts) throw r.error('num_experts_per_tok', `(${topK}) must not exceed num_local_experts (${numExperts})`);
    return { numExperts, topK, intermediateSize, normTopkProb: true, denseLayers: [] };
  }
  const numExperts = r.has('num_experts') ? r.nonNegativeInt('num_experts') : 128;
  const topK = r.positiveInt('num_experts_per_tok', 8);
  if (numExperts > 0 && topK > numExperts) throw r.error('num_experts_per_tok', `(${topK}) must not exceed num_experts (${numExperts})`);
  const step = r.positiveInt('decoder_sparse_step', 1);
  const only = r.raw.mlp_only_layers ?? [];
  if (!Array.isArray(only) || !only.every((i) => typeof i === 'number' && Number.isSafeInteger(i) && i >= 0 && i < layers)) {
    throw r.error('mlp_only_layers', `must be a list of layer indices in [0, ${layers}), got ${describeValue(r.raw.mlp_only_layers)}`);
  }
  const denseLayers: number[] = [];
  for (let i = 0; i < layers; i++) if (only.includes(i) || numExperts === 0 || (i + 1) % step !== 0) denseLayers.push(i);
  return { numExperts, topK, intermediateSize: r.positiveInt('moe_intermediate_size', 768), normTopkProb: r.bool('norm_topk_prob', false), denseLayers };
}

/** Granite's multipliers (GraniteConfig defaults 1.0 each). */
function resolveGraniteMultipliers(r: Reader): NonNullable<ModelConfig['multipliers']> {
  return {
    embedding: r.positiveNumber('embedding_multiplier', 1),
    residual: r.positiveNumber('residual_multiplier', 1),
    attention: r.positiveNumber('attention_multiplier', 1),
    logitsScaling: r.positiveNumber('logits_scaling', 1),
  };
}

/**
 * Baichuan 13B (1 and 2) uses ALiBi attention biases instead of RoPE; its config has
 * model_max_length but no max_position_embeddings, hidden_size 5120 and 40 layers.
 */
function checkBaichuanLayout(r: Reader, hidden: number, layers: number): void {
  const noRopeLength = !r.has('max_position_embeddings') && r.has('model_max_length');
  if (noRopeLength || (hidden === 5120 && layers === 40)) {
    const seen = noRopeLength ? 'model_max_length without max_position_embeddings' : 'hidden_size 5120 with 40 layers';
    throw unsupported(r.file, `this looks like a Baichuan 13B config (${seen}): Baichuan 13B uses ALiBi position biases, not RoPE; `
      + 'only the Baichuan 7B layout (fused W_pack, RoPE) is supported');
  }
}

/** Validates a parsed config.json (`file` names it in errors) and returns what the engine needs, in camelCase; ShortGptError naming the field otherwise. */
export function resolveConfig(raw: unknown, file: string): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ShortGptError('ERR_CONFIG', `${file}: config must be a JSON object`);
  }
  const r = new Reader(raw as Record<string, unknown>, file);
  const architecture = resolveArchitecture(r);
  const d = DEFAULTS[architecture];

  const numHiddenLayers = r.positiveInt('num_hidden_layers');
  const hiddenSize = r.positiveInt('hidden_size');
  const intermediateSize = r.positiveInt('intermediate_size');
  const numAttentionHeads = r.positiveInt('num_attention_heads');
  const vocabSize = r.positiveInt('vocab_size');
  checkPerLayerLists(r, numHiddenLayers);
  if (architecture === 'BaichuanForCausalLM') checkBaichuanLayout(r, hiddenSize, numHiddenLayers);

  // Baichuan 7B has no GQA and no such field.
  // SmolLM3Config defaults num_key_value_heads to 4, the others to num_attention_heads.
  const numKeyValueHeads = architecture === 'BaichuanForCausalLM' ? numAttentionHeads
    : r.positiveInt('num_key_value_heads', architecture === 'SmolLM3ForCausalLM' || isGemma(architecture) || architecture === 'Qwen3MoeForCausalLM' ? 4
      : architecture === 'MixtralForCausalLM' ? 8 : numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    throw r.error('num_key_value_heads', `(${numKeyValueHeads}) must divide num_attention_heads (${numAttentionHeads})`);
  }
  let headDim: number;
  if (r.has('head_dim') && architecture !== 'BaichuanForCausalLM') {
    headDim = r.positiveInt('head_dim');
  } else if (architecture === 'Qwen3ForCausalLM') {
    // transformers' Qwen3Config defaults head_dim to 128, not hidden/heads.
    headDim = 128;
  } else if (isGemma(architecture)) {
    headDim = 256; // Gemma2Config / Gemma3TextConfig default
  } else {
    if (hiddenSize % numAttentionHeads !== 0) throw r.error('hidden_size', `(${hiddenSize}) must be a multiple of num_attention_heads (${numAttentionHeads}) when head_dim is not given`);
    headDim = hiddenSize / numAttentionHeads;
  }
  if (headDim % 2 !== 0) throw r.error('head_dim', `must be even for rotary embeddings, got ${headDim}`);

  // Gemma reads `hidden_activation` (checked in resolveGemma); its configs also carry a legacy hidden_act.
  const act = isGemma(architecture) ? 'silu' : r.raw.hidden_act ?? 'silu';
  if (act !== 'silu') throw unsupported(file, `field 'hidden_act' is ${describeValue(act)}; only 'silu' (SwiGLU MLP) is supported`);
  if (r.bool('mlp_bias', false)) throw unsupported(file, "field 'mlp_bias' is true; MLP biases are not supported");

  const maxPositionEmbeddings = r.positiveInt('max_position_embeddings', d.maxPositionEmbeddings);
  // transformers v5 moves rope_theta into `rope_parameters`; the top-level field wins when both exist.
  const ropeParams = r.raw.rope_parameters;
  const nestedTheta = typeof ropeParams === 'object' && ropeParams !== null ? (ropeParams as Record<string, unknown>).rope_theta : undefined;
  // SmolLM3Config.default_theta 2e6, MixtralConfig.default_theta 1e6, the others 10000.
  const defaultTheta = architecture === 'SmolLM3ForCausalLM' ? SMOLLM3_ROPE_THETA : architecture === 'MixtralForCausalLM' ? 1e6 : DEFAULT_ROPE_THETA;
  const ropeTheta = r.has('rope_theta') || nestedTheta === undefined ? r.positiveNumber('rope_theta', defaultTheta)
    : new Reader(ropeParams as Record<string, unknown>, file).positiveNumber('rope_theta', defaultTheta);

  let attentionBias = false;
  let slidingWindow: number | null = null;
  switch (architecture) {
    case 'LlamaForCausalLM':
    case 'Qwen3ForCausalLM':
    case 'GraniteForCausalLM':
    case 'SmolLM3ForCausalLM':
    case 'Olmo2ForCausalLM':
    case 'Gemma2ForCausalLM':
    case 'Gemma3ForCausalLM':
    case 'Qwen3MoeForCausalLM':
      // q/k/v and o_proj all built with bias=config.attention_bias.
      attentionBias = r.bool('attention_bias', false);
      break;
    case 'Qwen2ForCausalLM':
      attentionBias = true; // Qwen2's q/k/v projections always carry biases
      break;
    default:
      break;
  }
  if (architecture === 'MistralForCausalLM') {
    // MistralConfig defaults sliding_window to 4096 when absent; an explicit null disables it.
    slidingWindow = r.raw.sliding_window === null ? null : r.positiveInt('sliding_window', d.slidingWindow);
  } else if (architecture === 'Qwen2ForCausalLM' || architecture === 'Qwen3ForCausalLM') {
    slidingWindow = resolveQwenSlidingWindow(r, architecture, numHiddenLayers);
  }
  if (architecture === 'MixtralForCausalLM' && r.has('sliding_window')) {
    // MixtralConfig: sliding_window defaults to None; when set, every layer's mask uses it.
    slidingWindow = r.positiveInt('sliding_window');
  } else if (architecture === 'Qwen3MoeForCausalLM' && r.bool('use_sliding_window', false) && r.raw.sliding_window !== null) {
    // Qwen3MoeConfig: sliding_window (default 4096) only with use_sliding_window, on every layer.
    slidingWindow = r.positiveInt('sliding_window', d.slidingWindow);
  }
  const moe = architecture === 'MixtralForCausalLM' || architecture === 'Qwen3MoeForCausalLM' ? resolveMoe(r, architecture, numHiddenLayers, intermediateSize) : undefined;
  if (architecture === 'Phi3ForCausalLM' && r.has('sliding_window')) {
    // Phi3Model masks every layer with the window when config.sliding_window is set.
    slidingWindow = r.positiveInt('sliding_window');
  }
  const phi3Rope = architecture === 'Phi3ForCausalLM' ? resolvePhi3Rope(r, headDim, maxPositionEmbeddings) : undefined;
  const noRopeLayers = architecture === 'SmolLM3ForCausalLM' ? resolveNoRopeLayers(r, numHiddenLayers) : undefined;
  const gemma = isGemma(architecture) ? resolveGemma(r, architecture, numHiddenLayers, hiddenSize, maxPositionEmbeddings) : undefined;
  if (gemma) slidingWindow = gemma.slidingWindow;
  if (noRopeLayers) slidingWindow = resolveSmolLm3SlidingWindow(r, numHiddenLayers, noRopeLayers);

  const eos = r.raw.eos_token_id;
  let eosTokenId: number | number[] | null;
  if (Array.isArray(eos)) {
    if (!eos.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) throw r.error('eos_token_id', `must be a token id or a list of them, got ${describeValue(eos)}`);
    eosTokenId = eos as number[];
  } else {
    eosTokenId = r.tokenId('eos_token_id');
  }

  return {
    architecture,
    modelType: typeof r.raw.model_type === 'string' ? r.raw.model_type : '',
    numHiddenLayers,
    hiddenSize,
    intermediateSize,
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    vocabSize,
    // Olmo2Config, Phi3Config and MixtralConfig default rms_norm_eps to 1e-5, the others to 1e-6.
    rmsNormEps: r.positiveNumber('rms_norm_eps', ['Olmo2ForCausalLM', 'Phi3ForCausalLM', 'MixtralForCausalLM'].includes(architecture) ? 1e-5 : DEFAULT_RMS_NORM_EPS),
    ropeTheta: gemma?.ropeTheta ?? ropeTheta,
    ropeScaling: phi3Rope ? phi3Rope.scaling : gemma?.ropeScaling ?? resolveRopeScaling(r, maxPositionEmbeddings),
    maxPositionEmbeddings,
    // Baichuan's lm_head is never tied to the embeddings.
    // SmolLM3Config and the Gemma configs default tie_word_embeddings to true, the others to false.
    tieWordEmbeddings: architecture === 'BaichuanForCausalLM' ? false : r.bool('tie_word_embeddings', architecture === 'SmolLM3ForCausalLM' || isGemma(architecture)),
    attentionBias,
    qkNorm: ['Qwen3ForCausalLM', 'Olmo2ForCausalLM', 'Gemma3ForCausalLM', 'Qwen3MoeForCausalLM'].includes(architecture),
    fusedQkv: architecture === 'BaichuanForCausalLM' || architecture === 'Phi3ForCausalLM',
    slidingWindow,
    bosTokenId: r.tokenId('bos_token_id'),
    eosTokenId,
    normalizedLmHead: architecture === 'BaichuanForCausalLM' && (r.raw.architectures as unknown[] | undefined)?.[0] !== 'BaiChuanForCausalLM',
    ...(architecture === 'GraniteForCausalLM' ? { multipliers: resolveGraniteMultipliers(r) } : {}),
    ...(noRopeLayers && noRopeLayers.length > 0 ? { noRopeLayers } : {}),
    ...(architecture === 'Olmo2ForCausalLM' ? { postNorms: true } : {}),
    ...(gemma ? { gemma: gemma.gemma } : {}),
    ...(moe ? { moe } : {}),
    ...(phi3Rope ? { fusedGateUp: true, ...(phi3Rope.rotaryDim !== headDim ? { rotaryDim: phi3Rope.rotaryDim } : {}) } : {}),
  };
}

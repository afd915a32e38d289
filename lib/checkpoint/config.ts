/**
 * config.json resolved once into a ModelConfig. Every default lives here (candle's
 * `LlamaConfig::into_config` idea); nothing downstream reads raw JSON. Defaults follow the
 * transformers configuration classes (LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config,
 * Baichuan's remote-code BaichuanConfig).
 */
import { ShortGptError } from '../errors';
import { printable, quoted } from '../util/printable';
import type { Architecture, ModelConfig, RopeScaling } from './types';

/** The config.json `architectures` the engine runs (others are refused with ERR_UNSUPPORTED_ARCHITECTURE). */
export const SUPPORTED_ARCHITECTURES: readonly Architecture[] = [
  'LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM', 'BaichuanForCausalLM',
];

/** Per-architecture defaults for fields a config.json may omit (transformers' class defaults). */
const DEFAULTS: Record<Architecture, { maxPositionEmbeddings: number; slidingWindow: number; maxWindowLayers: number }> = {
  LlamaForCausalLM: { maxPositionEmbeddings: 2048, slidingWindow: 0, maxWindowLayers: 0 },
  MistralForCausalLM: { maxPositionEmbeddings: 4096 * 32, slidingWindow: 4096, maxWindowLayers: 0 },
  Qwen2ForCausalLM: { maxPositionEmbeddings: 32768, slidingWindow: 4096, maxWindowLayers: 28 },
  Qwen3ForCausalLM: { maxPositionEmbeddings: 32768, slidingWindow: 4096, maxWindowLayers: 28 },
  BaichuanForCausalLM: { maxPositionEmbeddings: 4096, slidingWindow: 0, maxWindowLayers: 0 },
};
const DEFAULT_ROPE_THETA = 10000;
const DEFAULT_RMS_NORM_EPS = 1e-6;

/** Other spellings seen in the wild, and model_type -> class for configs without `architectures`. */
const ALIASES: Record<string, Architecture> = {
  BaiChuanForCausalLM: 'BaichuanForCausalLM', // Baichuan 1 7B spells it this way
};
const BY_MODEL_TYPE: Record<string, Architecture> = {
  llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM', qwen3: 'Qwen3ForCausalLM', baichuan: 'BaichuanForCausalLM',
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
const PER_LAYER_LISTS = ['layer_types', 'mlp_layer_types'];

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
  const numKeyValueHeads = architecture === 'BaichuanForCausalLM' ? numAttentionHeads : r.positiveInt('num_key_value_heads', numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    throw r.error('num_key_value_heads', `(${numKeyValueHeads}) must divide num_attention_heads (${numAttentionHeads})`);
  }
  let headDim: number;
  if (r.has('head_dim') && architecture !== 'BaichuanForCausalLM') {
    headDim = r.positiveInt('head_dim');
  } else if (architecture === 'Qwen3ForCausalLM') {
    // transformers' Qwen3Config defaults head_dim to 128, not hidden/heads.
    headDim = 128;
  } else {
    if (hiddenSize % numAttentionHeads !== 0) throw r.error('hidden_size', `(${hiddenSize}) must be a multiple of num_attention_heads (${numAttentionHeads}) when head_dim is not given`);
    headDim = hiddenSize / numAttentionHeads;
  }
  if (headDim % 2 !== 0) throw r.error('head_dim', `must be even for rotary embeddings, got ${headDim}`);

  const act = r.raw.hidden_act ?? 'silu';
  if (act !== 'silu') throw unsupported(file, `field 'hidden_act' is ${describeValue(act)}; only 'silu' (SwiGLU MLP) is supported`);
  if (r.bool('mlp_bias', false)) throw unsupported(file, "field 'mlp_bias' is true; MLP biases are not supported");

  const maxPositionEmbeddings = r.positiveInt('max_position_embeddings', d.maxPositionEmbeddings);
  // transformers v5 moves rope_theta into `rope_parameters`; the top-level field wins when both exist.
  const ropeParams = r.raw.rope_parameters;
  const nestedTheta = typeof ropeParams === 'object' && ropeParams !== null ? (ropeParams as Record<string, unknown>).rope_theta : undefined;
  const ropeTheta = r.has('rope_theta') || nestedTheta === undefined ? r.positiveNumber('rope_theta', DEFAULT_ROPE_THETA)
    : new Reader(ropeParams as Record<string, unknown>, file).positiveNumber('rope_theta', DEFAULT_ROPE_THETA);

  let attentionBias = false;
  let slidingWindow: number | null = null;
  switch (architecture) {
    case 'LlamaForCausalLM':
    case 'Qwen3ForCausalLM':
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
    rmsNormEps: r.positiveNumber('rms_norm_eps', DEFAULT_RMS_NORM_EPS),
    ropeTheta,
    ropeScaling: resolveRopeScaling(r, maxPositionEmbeddings),
    maxPositionEmbeddings,
    // Baichuan's lm_head is never tied to the embeddings.
    tieWordEmbeddings: architecture === 'BaichuanForCausalLM' ? false : r.bool('tie_word_embeddings', false),
    attentionBias,
    qkNorm: architecture === 'Qwen3ForCausalLM',
    fusedQkv: architecture === 'BaichuanForCausalLM',
    slidingWindow,
    bosTokenId: r.tokenId('bos_token_id'),
    eosTokenId,
    normalizedLmHead: architecture === 'BaichuanForCausalLM' && (r.raw.architectures as unknown[] | undefined)?.[0] !== 'BaiChuanForCausalLM',
  };
}

/**
 * config.json -> the handful of numbers the float64 reference needs, with Hugging Face's
 * defaults applied here and independently of lib/checkpoint/config.ts. Each default cites the
 * transformers config class it comes from.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export type RefArchitecture = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'baichuan' | 'granite' | 'smollm3' | 'olmo2' | 'phi3' | 'gemma2' | 'gemma3' | 'mixtral' | 'qwen3moe';

export interface RefConfig {
  architecture: RefArchitecture;
  numLayers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  eps: number;
  tied: boolean;
  /**
   * Baichuan 2 (class spelled `BaichuanForCausalLM`) computes logits with a NormHead: every
   * lm_head row divided by its L2 norm (modeling_baichuan.py, nn.functional.normalize).
   * Baichuan 1 (`BaiChuanForCausalLM`) uses a plain linear head.
   */
  normHead: boolean;
  /**
   * Per-head rotary inverse frequencies (length headDim / 2, or rotary_dim / 2 with Phi-3's
   * partial_rotary_factor), scaling already applied; for LongRoPE the short factors'.
   */
  invFreq: Float64Array;
  /** LongRoPE: the long factors' frequencies, for sequences longer than longAbove tokens; else null. */
  invFreqLong: Float64Array | null;
  longAbove: number;
  /** LongRoPE's attention_factor (cos and sin times it); 1 otherwise. */
  ropeScale: number;
  /** Per layer: the sliding attention window in tokens, or null for full causal attention. */
  windows: (number | null)[];
  /** Per layer: whether it applies the rotary embedding (SmolLM3's no_rope_layers[i] != 0). */
  rope: boolean[];
  /** GraniteConfig multipliers (1 for the others); attentionScale null = 1/sqrt(head_dim). */
  embeddingMultiplier: number;
  residualMultiplier: number;
  attentionScale: number | null;
  logitsScaling: number;
  /**
   * Gemma2Config / Gemma3TextConfig, null for the others: RMSNorm weights used as 1 + w, four
   * norms per layer, GeGLU (gelu tanh), embeddings times sqrt(hidden) in the embedding dtype,
   * query_pre_attn_scalar^-0.5 score scale, soft-capping, and Gemma 3's local RoPE frequencies
   * for the sliding layers.
   */
  /**
   * MixtralConfig / Qwen3MoeConfig, null for the others: experts, experts per token, whether the
   * top-k weights are renormalised, and per layer whether it is sparse.
   */
  moe: { experts: number; topK: number; normTopk: boolean; sparse: boolean[] } | null;
  gemma: {
    attentionScale: number;
    attnSoftcap: number | null;
    finalSoftcap: number | null;
    /** Per layer: layer_types[i] === 'sliding_attention'. */
    sliding: boolean[];
    /** Gemma 3: inverse frequencies of the sliding layers (rope_local_base_freq, unscaled). */
    invFreqLocal: Float64Array | null;
  } | null;
}

type Json = Record<string, unknown>;

function architectureOf(raw: Json, dir: string): RefArchitecture {
  const name = ((raw.architectures as string[] | undefined) ?? [])[0] ?? '';
  const table: Record<string, RefArchitecture> = {
    LlamaForCausalLM: 'llama',
    MistralForCausalLM: 'mistral',
    Qwen2ForCausalLM: 'qwen2',
    Qwen3ForCausalLM: 'qwen3',
    BaichuanForCausalLM: 'baichuan',
    BaiChuanForCausalLM: 'baichuan',
    GraniteForCausalLM: 'granite',
    SmolLM3ForCausalLM: 'smollm3',
    Olmo2ForCausalLM: 'olmo2',
    Phi3ForCausalLM: 'phi3',
    Gemma2ForCausalLM: 'gemma2',
    Gemma3ForCausalLM: 'gemma3',
    MixtralForCausalLM: 'mixtral',
    Qwen3MoeForCausalLM: 'qwen3moe',
  };
  const arch = table[name];
  if (!arch) throw new Error(`reference: ${dir}/config.json architecture ${JSON.stringify(name)} is not modelled`);
  return arch;
}

/** transformers modeling_rope_utils: default, linear and llama3 inverse frequencies. */
export function ropeInvFreq(headDim: number, theta: number, scaling: Json | null | undefined): Float64Array {
  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / theta ** ((2 * i) / headDim);
  const kind = scaling ? ((scaling.rope_type ?? scaling.type) as string | undefined) : undefined;
  if (!scaling || kind === undefined || kind === 'default') return inv;
  const factor = scaling.factor as number;
  if (kind === 'linear') {
    // Linear scaling divides positions by `factor`, i.e. every frequency.
    for (let i = 0; i < half; i++) inv[i] /= factor;
    return inv;
  }
  if (kind === 'llama3') {
    // _compute_llama3_parameters: long wavelengths slowed by `factor`, short ones kept, and a
    // smooth interpolation between the two bands.
    const low = scaling.low_freq_factor as number;
    const high = scaling.high_freq_factor as number;
    const oldContext = scaling.original_max_position_embeddings as number;
    const lowWavelen = oldContext / low;
    const highWavelen = oldContext / high;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen > lowWavelen) inv[i] = inv[i] / factor;
      else if (wavelen >= highWavelen) {
        const smooth = (oldContext / wavelen - low) / (high - low);
        inv[i] = (1 - smooth) * (inv[i] / factor) + smooth * inv[i];
      }
    }
    return inv;
  }
  throw new Error(`reference: rope_scaling type ${kind} is not modelled`);
}

/**
 * Which layers attend through a sliding window. Mistral: every layer. Qwen2/Qwen3
 * (Qwen2Config.layer_types): only with `use_sliding_window`, then the layers `layer_types` marks
 * 'sliding_attention', or without that list the layers i >= `max_window_layers` (default 28).
 */
function slidingWindows(arch: RefArchitecture, raw: Json, numLayers: number): (number | null)[] {
  // MistralConfig / Qwen2Config / Qwen3Config default sliding_window to 4096; an explicit null
  // turns it off.
  const window = raw.sliding_window === undefined ? 4096 : (raw.sliding_window as number | null);
  if (arch === 'mistral') return new Array<number | null>(numLayers).fill(window);
  // MixtralConfig: sliding_window defaults to None; Qwen3MoeConfig: used only with use_sliding_window.
  if (arch === 'mixtral') return new Array<number | null>(numLayers).fill((raw.sliding_window as number | null | undefined) ?? null);
  if (arch === 'qwen3moe') return new Array<number | null>(numLayers).fill(raw.use_sliding_window === true ? window : null);
  if (arch === 'gemma2' || arch === 'gemma3') {
    const sliding = gemmaSliding(arch, raw, numLayers);
    return sliding.map((s) => (s ? window : null));
  }
  // Phi3Config: sliding_window defaults to None; when set, Phi3Model masks every layer with it.
  if (arch === 'phi3') return new Array<number | null>(numLayers).fill((raw.sliding_window as number | null | undefined) ?? null);
  if (arch === 'smollm3') {
    // SmolLM3Config: sliding_window defaults to None; without layer_types, the no-RoPE layers slide.
    const w = (raw.sliding_window as number | null | undefined) ?? null;
    if (raw.use_sliding_window !== true || w === null) return new Array<number | null>(numLayers).fill(null);
    const types = raw.layer_types as string[] | undefined;
    const rope = ropeLayers(arch, raw, numLayers);
    return Array.from({ length: numLayers }, (_, i) => ((types ? types[i] === 'sliding_attention' : !rope[i]) ? w : null));
  }
  if (arch !== 'qwen2' && arch !== 'qwen3') return new Array<number | null>(numLayers).fill(null);
  if (raw.use_sliding_window !== true || window === null) return new Array<number | null>(numLayers).fill(null);
  const layerTypes = raw.layer_types as string[] | undefined;
  if (layerTypes) return layerTypes.map((t) => (t === 'sliding_attention' ? window : null));
  const maxWindowLayers = (raw.max_window_layers as number | undefined) ?? 28;
  return Array.from({ length: numLayers }, (_, i) => (i >= maxWindowLayers ? window : null));
}

/** SmolLM3Config.__post_init__: no_rope_layers, else int((i + 1) % no_rope_layer_interval != 0), interval 4. */
function ropeLayers(arch: RefArchitecture, raw: Json, numLayers: number): boolean[] {
  if (arch !== 'smollm3') return new Array<boolean>(numLayers).fill(true);
  const list = raw.no_rope_layers as (number | boolean)[] | undefined | null;
  if (list) return list.map((x) => Boolean(x));
  const interval = (raw.no_rope_layer_interval as number | undefined) ?? 4;
  return Array.from({ length: numLayers }, (_, i) => (i + 1) % interval !== 0);
}

/**
 * Phi3Config's RoPE: partial_rotary_factor (rope parameters first, then top level, default 1);
 * 'longrope' (also spelled 'su' or 'yarn') per _compute_longrope_parameters: inv_freq =
 * 1 / (ext_factor * theta^(2i / dim)), the top-level original_max_position_embeddings (default
 * 4096), factor = max_position_embeddings / original unless given, attention_factor =
 * sqrt(1 + ln(factor) / ln(original)) unless given (1 when factor <= 1).
 */
function phi3Rope(raw: Json, headDim: number, theta: number): Pick<RefConfig, 'invFreq' | 'invFreqLong' | 'longAbove' | 'ropeScale'> {
  const rp = (raw.rope_scaling ?? raw.rope_parameters ?? {}) as Json;
  const prf = ((rp.partial_rotary_factor ?? raw.partial_rotary_factor) as number | undefined) ?? 1;
  const dim = Math.floor(headDim * prf);
  const freqs = (factors: number[] | null): Float64Array =>
    Float64Array.from({ length: dim / 2 }, (_, i) => 1 / ((factors ? factors[i] : 1) * theta ** ((2 * i) / dim)));
  const kind = (rp.rope_type ?? rp.type ?? 'default') as string;
  if (kind === 'default') return { invFreq: freqs(null), invFreqLong: null, longAbove: 0, ropeScale: 1 };
  const original = (raw.original_max_position_embeddings as number | undefined) ?? 4096;
  const factor = (rp.factor as number | undefined) ?? ((raw.max_position_embeddings as number | undefined) ?? 4096) / original;
  const attention = (rp.attention_factor as number | undefined) ?? (factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(original)));
  return { invFreq: freqs(rp.short_factor as number[]), invFreqLong: freqs(rp.long_factor as number[]), longAbove: original, ropeScale: attention };
}

/** Gemma2Config: sliding, full, sliding, ...; Gemma3TextConfig: full every sliding_window_pattern-th layer (6). */
function gemmaSliding(arch: RefArchitecture, raw: Json, numLayers: number): boolean[] {
  const types = raw.layer_types as string[] | undefined | null;
  if (types) return types.map((t) => t === 'sliding_attention');
  const pattern = arch === 'gemma3' ? (raw.sliding_window_pattern as number | undefined) ?? 6 : 2;
  return Array.from({ length: numLayers }, (_, i) => (i + 1) % pattern !== 0);
}

/** Which layers are sparse: all for Mixtral; Qwen3MoeDecoderLayer's rule for Qwen3-MoE. */
function moeConfig(arch: RefArchitecture, raw: Json, numLayers: number): RefConfig['moe'] {
  if (arch === 'mixtral') {
    return { experts: (raw.num_local_experts as number | undefined) ?? 8, topK: (raw.num_experts_per_tok as number | undefined) ?? 2, normTopk: true, sparse: new Array<boolean>(numLayers).fill(true) };
  }
  if (arch !== 'qwen3moe') return null;
  const experts = (raw.num_experts as number | undefined) ?? 128;
  const step = (raw.decoder_sparse_step as number | undefined) ?? 1;
  const only = (raw.mlp_only_layers as number[] | undefined | null) ?? [];
  return {
    experts, topK: (raw.num_experts_per_tok as number | undefined) ?? 8, normTopk: (raw.norm_topk_prob as boolean | undefined) ?? false,
    sparse: Array.from({ length: numLayers }, (_, i) => !only.includes(i) && experts > 0 && (i + 1) % step === 0),
  };
}

export function readRefConfig(dir: string): RefConfig {
  const raw = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Json;
  const architecture = architectureOf(raw, dir);
  const hidden = raw.hidden_size as number;
  const heads = raw.num_attention_heads as number;
  const numLayers = raw.num_hidden_layers as number;
  // Qwen3Config declares head_dim=128 as its default; the others derive it.
  // Qwen3Config's and the Gemma configs' head_dim defaults (128, 256) are not hidden / heads.
  const headDim = (raw.head_dim as number | undefined)
    ?? (architecture === 'qwen3' ? 128 : architecture === 'gemma2' || architecture === 'gemma3' ? 256 : hidden / heads);
  // Baichuan-7B's RotaryEmbedding hard-codes base 10000 and reads no rope_theta.
  // transformers v5 moves rope_theta and the scaling into `rope_parameters`.
  const ropeParams = raw.rope_parameters as Json | undefined;
  // SmolLM3Config.default_theta is 2e6, Gemma3TextConfig's 1e6 (global layers); the others' 10000.
  const gemma3 = architecture === 'gemma3';
  const nested = gemma3 && ropeParams && typeof ropeParams.full_attention === 'object' ? ropeParams : null;
  const theta = architecture === 'baichuan' ? 10000
    : nested ? ((nested.full_attention as Json).rope_theta as number | undefined) ?? 1e6
      : ((raw.rope_theta ?? ropeParams?.rope_theta) as number | undefined) ?? (architecture === 'smollm3' ? 2000000 : gemma3 || architecture === 'mixtral' ? 1e6 : 10000);
  const gemma = architecture === 'gemma2' || gemma3;
  const softcap = (key: string, fallback: number | null): number | null => (key in raw ? (raw[key] as number | null) : fallback);
  const localTheta = nested ? ((nested.sliding_attention as Json | undefined)?.rope_theta as number | undefined) ?? 1e4
    : (raw.rope_local_base_freq as number | undefined) ?? 1e4;
  const granite = architecture === 'granite';
  const num = (key: string): number => (granite ? (raw[key] as number | undefined) ?? 1 : 1);
  return {
    architecture,
    numLayers,
    hidden,
    heads,
    // SmolLM3Config, Qwen3MoeConfig and the Gemma configs default num_key_value_heads to 4, MixtralConfig to 8.
    kvHeads: (raw.num_key_value_heads as number | undefined) ?? (architecture === 'smollm3' || architecture === 'qwen3moe' || gemma ? 4 : architecture === 'mixtral' ? 8 : heads),
    headDim,
    vocab: raw.vocab_size as number,
    // Olmo2Config, Phi3Config and MixtralConfig default rms_norm_eps to 1e-5, the others to 1e-6.
    eps: (raw.rms_norm_eps as number | undefined) ?? (architecture === 'olmo2' || architecture === 'phi3' || architecture === 'mixtral' ? 1e-5 : 1e-6),
    // Llama/Mistral/Qwen2/Qwen3/Baichuan/Granite config classes default tie_word_embeddings to
    // false, SmolLM3Config to true.
    tied: (raw.tie_word_embeddings as boolean | undefined) ?? (architecture === 'smollm3' || gemma),
    normHead: ((raw.architectures as string[] | undefined) ?? [])[0] === 'BaichuanForCausalLM',
    ...(architecture === 'phi3' ? phi3Rope(raw, headDim, theta)
      : { invFreq: ropeInvFreq(headDim, theta, (raw.rope_scaling ?? (nested ? nested.full_attention : ropeParams)) as Json | null | undefined), invFreqLong: null, longAbove: 0, ropeScale: 1 }),
    windows: slidingWindows(architecture, raw, numLayers),
    rope: ropeLayers(architecture, raw, numLayers),
    embeddingMultiplier: num('embedding_multiplier'),
    residualMultiplier: num('residual_multiplier'),
    attentionScale: granite ? num('attention_multiplier') : null,
    logitsScaling: num('logits_scaling'),
    moe: moeConfig(architecture, raw, numLayers),
    gemma: gemma ? {
      attentionScale: ((raw.query_pre_attn_scalar as number | undefined) ?? 256) ** -0.5,
      attnSoftcap: softcap('attn_logit_softcapping', gemma3 ? null : 50),
      finalSoftcap: softcap('final_logit_softcapping', gemma3 ? null : 30),
      sliding: gemmaSliding(architecture, raw, numLayers),
      invFreqLocal: gemma3 ? ropeInvFreq(headDim, localTheta, null) : null,
    } : null,
  };
}

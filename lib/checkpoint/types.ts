/**
 * The shared vocabulary of checkpoints: what a safetensors file, a shard index and a resolved
 * model config look like once validated. Everything downstream (engine, rewrite, inspect)
 * works on these types and never on raw JSON.
 */

/** safetensors dtypes (huggingface/safetensors `Dtype`). We compute only in F32, F16, BF16. */
export type DType =
  | 'BOOL' | 'U8' | 'I8' | 'F8_E5M2' | 'F8_E4M3'
  | 'I16' | 'U16' | 'F16' | 'BF16'
  | 'I32' | 'U32' | 'F32'
  | 'I64' | 'U64' | 'F64';

/** The weight dtypes the engine reads (converted while packing; see the design notes on precision). */
export type ComputeDType = 'F32' | 'F16' | 'BF16';

/** One tensor of a safetensors file, from its header: where its bytes are, not the bytes. */
export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute path of the .safetensors file holding the tensor. */
  file: string;
  /** Absolute byte offset of the tensor's first byte in `file` (8 + header length + begin). */
  dataOffset: number;
  byteLength: number;
}

/** One validated .safetensors file. */
export interface SafetensorsFile {
  file: string;
  fileSize: number;
  /** N, the JSON header's byte length; tensor data starts at 8 + N. */
  headerLength: number;
  dataStart: number;
  /** `__metadata__`, string -> string, when present. */
  metadata: Record<string, string> | undefined;
  /** Tensors in the file's data order (ascending offset). */
  tensors: TensorInfo[];
}

/** model.safetensors.index.json, validated against the shards it names. */
export interface ShardIndex {
  file: string;
  metadata: Record<string, unknown>;
  /** tensor name -> shard file name (relative to the checkpoint directory). */
  weightMap: Map<string, string>;
}

/** The model classes the engine runs (config.json `architectures[0]`). */
export type Architecture =
  | 'LlamaForCausalLM'
  | 'MistralForCausalLM'
  | 'Qwen2ForCausalLM'
  | 'Qwen3ForCausalLM'
  | 'BaichuanForCausalLM'
  | 'GraniteForCausalLM'
  | 'SmolLM3ForCausalLM'
  | 'Olmo2ForCausalLM'
  | 'Phi3ForCausalLM'
  | 'Gemma2ForCausalLM'
  | 'Gemma3ForCausalLM'
  | 'MixtralForCausalLM'
  | 'Qwen3MoeForCausalLM';

/** config.json `rope_scaling`, as the engine applies it. */
export type RopeScaling =
  | { type: 'none' }
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number }
  /**
   * Phi-3's LongRoPE (transformers' _compute_longrope_parameters): inverse frequencies divided by
   * shortFactor for a sequence of at most originalMaxPositionEmbeddings tokens, by longFactor for a
   * longer one (chosen per sequence, as transformers' longrope_frequency_update does for one
   * sequence per forward); cos and sin times attentionFactor. One factor per rotary frequency.
   */
  | { type: 'longrope'; shortFactor: number[]; longFactor: number[]; originalMaxPositionEmbeddings: number; attentionFactor: number };

/** config.json resolved once, with every default applied in lib/checkpoint/config.ts. */
export interface ModelConfig {
  architecture: Architecture;
  modelType: string;
  numHiddenLayers: number;
  hiddenSize: number;
  intermediateSize: number;
  numAttentionHeads: number;
  /** Defaults to numAttentionHeads. */
  numKeyValueHeads: number;
  /** Defaults to hiddenSize / numAttentionHeads. */
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  /** Defaults to 10000. */
  ropeTheta: number;
  ropeScaling: RopeScaling;
  maxPositionEmbeddings: number;
  /** Defaults to false. */
  tieWordEmbeddings: boolean;
  /**
   * q/k/v projections carry biases (Qwen2 always; `attention_bias` for Llama/Qwen3, where
   * o_proj then has a bias too: see the 'o_bias' role in lib/checkpoint/architectures.ts).
   */
  attentionBias: boolean;
  /** Per-head RMSNorm of q and k before RoPE (Qwen3). */
  qkNorm: boolean;
  /** Fused q/k/v weight `self_attn.W_pack` (Baichuan 7B). */
  fusedQkv: boolean;
  /** Sliding attention window in tokens, or null for full causal attention. */
  slidingWindow: number | null;
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
  /**
   * Baichuan 2 (class spelled `BaichuanForCausalLM`): lm_head is a NormHead whose rows are
   * L2-normalised before computing logits. Baichuan 1 (`BaiChuanForCausalLM`) uses a plain
   * linear head. Absent means false. Affects logits/perplexity only, never Block Influence.
   */
  normalizedLmHead?: boolean;
  /**
   * Granite's four scalars (GraniteConfig; modeling_granite.py): embeddings times
   * `embedding_multiplier`, each sublayer's output times `residual_multiplier` before its residual
   * add, attention scores times `attention_multiplier` (instead of 1/sqrt(head_dim)), logits
   * divided by `logits_scaling`. Absent: the plain decoder (all 1, scale 1/sqrt(head_dim)).
   */
  multipliers?: { embedding: number; residual: number; attention: number; logitsScaling: number };
  /**
   * The layers that apply no rotary embedding (SmolLM3: `no_rope_layers[i] == 0`), ascending.
   * Absent or empty: every layer applies RoPE.
   */
  noRopeLayers?: number[];
  /**
   * OLMo 2 (modeling_olmo2.py): no input_layernorm; RMSNorm on the attention output
   * (post_attention_layernorm) and on the MLP output (post_feedforward_layernorm), each before
   * its residual add; and q_norm / k_norm over the whole q and k projections (qkNorm true too).
   */
  postNorms?: boolean;
  /** Phi-3: gate_proj and up_proj fused row-wise as `mlp.gate_up_proj` ([gate; up], [2 * intermediate, hidden]). */
  fusedGateUp?: boolean;
  /**
   * Dimensions of each head that RoPE rotates (int(head_dim * partial_rotary_factor), Phi-3 /
   * Phi-4-mini); the rest pass unrotated. Absent: headDim.
   */
  rotaryDim?: number;
  /**
   * Gemma 2 / Gemma 3 (modeling_gemma2.py, modeling_gemma3.py); absent for the others. Every
   * RMSNorm scales by (1 + weight); embeddings times sqrt(hidden_size) rounded to the embedding
   * tensor's dtype (embed_scale.to(weight.dtype)); four norms per layer (input, post-attention,
   * pre- and post-feed-forward); GeGLU with gelu_pytorch_tanh; attention scores times
   * query_pre_attn_scalar^-0.5; optional tanh soft-capping of attention scores and final logits;
   * a sliding window on the layers `layer_types` marks 'sliding_attention' only; Gemma 3's
   * sliding layers use RoPE base `localRopeTheta` without scaling.
   */
  /**
   * Mixtral / Qwen3-MoE sparse MLP (modeling_mixtral.py, modeling_qwen3_moe.py): a router
   * (softmax over numExperts in f32, the topK largest, renormalised when normTopkProb) and topK
   * SwiGLU experts of `intermediateSize` per token, weighted and summed. `denseLayers`
   * (Qwen3-MoE's mlp_only_layers / decoder_sparse_step) have an ordinary MLP of the config's
   * intermediate_size instead.
   */
  moe?: { numExperts: number; topK: number; intermediateSize: number; normTopkProb: boolean; denseLayers: number[] };
  gemma?: {
    embeddingScale: number;
    attentionScale: number;
    attnLogitSoftcapping: number | null;
    finalLogitSoftcapping: number | null;
    /**
     * Layers `layer_types` marks 'full_attention'; the others use slidingWindow (when set) and,
     * in Gemma 3, the local RoPE base.
     */
    fullAttentionLayers: number[];
    /** Gemma 3: the RoPE base of the sliding layers (rope_local_base_freq); null for Gemma 2. */
    localRopeTheta: number | null;
  };
}

/** A checkpoint directory: config + one or more validated safetensors files. */
export interface Checkpoint {
  dir: string;
  config: ModelConfig;
  /** config.json as parsed, for the rewrite (which edits and re-emits it). */
  rawConfig: Record<string, unknown>;
  files: SafetensorsFile[];
  /** Present when the directory is sharded. */
  index: ShardIndex | undefined;
  /** Every tensor by name. */
  tensors: Map<string, TensorInfo>;
  /** Non-fatal findings, e.g. tensors the architecture table does not know. */
  warnings: string[];
}

/** The role a tensor plays inside one decoder layer (names from the HF module paths). */
export type LayerTensorRole =
  | 'input_layernorm' | 'post_attention_layernorm'
  | 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'W_pack'
  | 'q_bias' | 'k_bias' | 'v_bias'
  /** o_proj bias: Llama and Qwen3 with `attention_bias: true` (never Qwen2, whose o_proj has none). */
  | 'o_bias'
  | 'q_norm' | 'k_norm'
  /** OLMo 2: RMSNorm of the MLP output before its residual add. */
  | 'post_feedforward_layernorm'
  /** Phi-3's fused [gate; up] MLP input projection. */
  | 'gate_up_proj'
  /** Gemma 2/3: RMSNorm of the MLP input (their post_attention_layernorm follows the attention). */
  | 'pre_feedforward_layernorm'
  /** Mixtral / Qwen3-MoE: the router ([numExperts, hidden]) and expert e's projections. */
  | 'moe_router'
  | `expert_gate.${number}` | `expert_up.${number}` | `expert_down.${number}`
  | 'gate_proj' | 'up_proj' | 'down_proj';

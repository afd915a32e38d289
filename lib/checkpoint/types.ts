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
  | 'BaichuanForCausalLM';

/** config.json `rope_scaling`, as the engine applies it. */
export type RopeScaling =
  | { type: 'none' }
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

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
  | 'gate_proj' | 'up_proj' | 'down_proj';

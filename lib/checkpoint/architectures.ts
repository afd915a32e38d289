/**
 * The tensors of each supported architecture, kept as data (mergekit's architectures/*.json
 * idea): what a layer holds, under which name and with which shape. The checkpoint check, the
 * engine's weight loading and the layer-dropping rewrite all read this one table.
 * Names are the Hugging Face module paths (modeling_llama.py, modeling_qwen3.py, Baichuan's
 * modeling_baichuan.py).
 */
import type { Architecture, LayerTensorRole, ModelConfig } from './types';

export interface LayerTensorSpec {
  role: LayerTensorRole;
  /** Name after `model.layers.<N>.`, e.g. 'self_attn.q_proj.weight'. */
  suffix: string;
  shape: (c: ModelConfig) => number[];
  /** Present only when this holds (e.g. biases when attentionBias). */
  when?: (c: ModelConfig) => boolean;
}

const qOut = (c: ModelConfig): number => c.numAttentionHeads * c.headDim;
const kvOut = (c: ModelConfig): number => c.numKeyValueHeads * c.headDim;
const withBias = (c: ModelConfig): boolean => c.attentionBias;

const NORMS: LayerTensorSpec[] = [
  { role: 'input_layernorm', suffix: 'input_layernorm.weight', shape: (c) => [c.hiddenSize] },
  { role: 'post_attention_layernorm', suffix: 'post_attention_layernorm.weight', shape: (c) => [c.hiddenSize] },
];

const SEPARATE_QKV: LayerTensorSpec[] = [
  { role: 'q_proj', suffix: 'self_attn.q_proj.weight', shape: (c) => [qOut(c), c.hiddenSize] },
  { role: 'k_proj', suffix: 'self_attn.k_proj.weight', shape: (c) => [kvOut(c), c.hiddenSize] },
  { role: 'v_proj', suffix: 'self_attn.v_proj.weight', shape: (c) => [kvOut(c), c.hiddenSize] },
  { role: 'q_bias', suffix: 'self_attn.q_proj.bias', shape: (c) => [qOut(c)], when: withBias },
  { role: 'k_bias', suffix: 'self_attn.k_proj.bias', shape: (c) => [kvOut(c)], when: withBias },
  { role: 'v_bias', suffix: 'self_attn.v_proj.bias', shape: (c) => [kvOut(c)], when: withBias },
];

const O_PROJ: LayerTensorSpec = { role: 'o_proj', suffix: 'self_attn.o_proj.weight', shape: (c) => [c.hiddenSize, qOut(c)] };

/** LlamaAttention / Qwen3Attention build o_proj with bias=config.attention_bias (Qwen2: bias=False). */
const O_BIAS: LayerTensorSpec = { role: 'o_bias', suffix: 'self_attn.o_proj.bias', shape: (c) => [c.hiddenSize], when: withBias };

const MLP: LayerTensorSpec[] = [
  { role: 'gate_proj', suffix: 'mlp.gate_proj.weight', shape: (c) => [c.intermediateSize, c.hiddenSize] },
  { role: 'up_proj', suffix: 'mlp.up_proj.weight', shape: (c) => [c.intermediateSize, c.hiddenSize] },
  { role: 'down_proj', suffix: 'mlp.down_proj.weight', shape: (c) => [c.hiddenSize, c.intermediateSize] },
];

/** Qwen3 normalises each head of q and k (RMSNorm over head_dim) before RoPE. */
const QK_NORM: LayerTensorSpec[] = [
  { role: 'q_norm', suffix: 'self_attn.q_norm.weight', shape: (c) => [c.headDim] },
  { role: 'k_norm', suffix: 'self_attn.k_norm.weight', shape: (c) => [c.headDim] },
];

/** Baichuan 7B: q, k and v fused row-wise into one [3 * hidden, hidden] matrix (q rows first). */
const W_PACK: LayerTensorSpec = { role: 'W_pack', suffix: 'self_attn.W_pack.weight', shape: (c) => [3 * c.hiddenSize, c.hiddenSize] };

export const LAYER_TENSORS: Record<Architecture, LayerTensorSpec[]> = {
  LlamaForCausalLM: [...NORMS, ...SEPARATE_QKV, O_PROJ, O_BIAS, ...MLP],
  MistralForCausalLM: [...NORMS, ...SEPARATE_QKV, O_PROJ, ...MLP],
  Qwen2ForCausalLM: [...NORMS, ...SEPARATE_QKV, O_PROJ, ...MLP],
  Qwen3ForCausalLM: [...NORMS, ...SEPARATE_QKV, ...QK_NORM, O_PROJ, O_BIAS, ...MLP],
  BaichuanForCausalLM: [...NORMS, W_PACK, O_PROJ, ...MLP],
};

const LAYER_PREFIX = /^model\.layers\.(0|[1-9]\d*)\./;

/** The tensor name of `suffix` in decoder layer `layer`: `model.layers.<layer>.<suffix>`. */
export function layerTensorName(layer: number, suffix: string): string {
  return `model.layers.${layer}.${suffix}`;
}

/** The layer index in a name like `model.layers.12.mlp.up_proj.weight`, else null. */
export function layerIndexOf(tensorName: string): number | null {
  const m = LAYER_PREFIX.exec(tensorName);
  if (!m) return null;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) ? n : null;
}

/** The tensors layer `layer` must hold under `config`, in the order HF writes them. */
export function layerTensorSpecs(config: ModelConfig, layer: number): { role: LayerTensorRole; name: string; shape: number[] }[] {
  return LAYER_TENSORS[config.architecture]
    .filter((s) => !s.when || s.when(config))
    .map((s) => ({ role: s.role, name: layerTensorName(layer, s.suffix), shape: s.shape(config) }));
}

export const EMBED_TOKENS = 'model.embed_tokens.weight';
export const FINAL_NORM = 'model.norm.weight';
export const LM_HEAD = 'lm_head.weight';

/** The tensors outside the layers: embeddings, final norm, and lm_head unless tied. */
export function globalTensorSpecs(config: ModelConfig): { name: string; shape: number[] }[] {
  const specs = [
    { name: EMBED_TOKENS, shape: [config.vocabSize, config.hiddenSize] },
    { name: FINAL_NORM, shape: [config.hiddenSize] },
  ];
  if (!config.tieWordEmbeddings) specs.push({ name: LM_HEAD, shape: [config.vocabSize, config.hiddenSize] });
  return specs;
}

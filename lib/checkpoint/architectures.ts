/**
 * The tensors of each supported architecture, kept as data (mergekit's architectures/*.json
 * idea): what a layer holds, under which name and with which shape. The checkpoint check, the
 * engine's weight loading and the layer-dropping rewrite all read this one table.
 * Names are the Hugging Face module paths (modeling_llama.py, modeling_qwen3.py, Baichuan's
 * modeling_baichuan.py, modeling_granite.py, modeling_smollm3.py, modeling_olmo2.py, modeling_phi3.py,
 * modeling_gemma2.py, modeling_gemma3.py, modeling_mixtral.py, modeling_qwen3_moe.py).
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

/** OLMo 2 normalises the whole q and k projections (RMSNorm over all heads at once) before RoPE. */
const QK_NORM_PROJECTION: LayerTensorSpec[] = [
  { role: 'q_norm', suffix: 'self_attn.q_norm.weight', shape: (c) => [qOut(c)] },
  { role: 'k_norm', suffix: 'self_attn.k_norm.weight', shape: (c) => [kvOut(c)] },
];

/** OLMo 2 has no input_layernorm: its norms follow the attention and the MLP. */
const POST_NORMS: LayerTensorSpec[] = [
  { role: 'post_attention_layernorm', suffix: 'post_attention_layernorm.weight', shape: (c) => [c.hiddenSize] },
  { role: 'post_feedforward_layernorm', suffix: 'post_feedforward_layernorm.weight', shape: (c) => [c.hiddenSize] },
];

/** Phi-3: q, k and v fused row-wise ([q; k; v], grouped-query sizes) and gate/up fused ([gate; up]). */
const QKV_PROJ: LayerTensorSpec = { role: 'W_pack', suffix: 'self_attn.qkv_proj.weight', shape: (c) => [qOut(c) + 2 * kvOut(c), c.hiddenSize] };
const GATE_UP_PROJ: LayerTensorSpec = { role: 'gate_up_proj', suffix: 'mlp.gate_up_proj.weight', shape: (c) => [2 * c.intermediateSize, c.hiddenSize] };

/** Gemma 2/3: the MLP's own pre- and post-norms (input_layernorm / post_attention_layernorm frame the attention). */
const GEMMA_NORMS: LayerTensorSpec[] = [
  { role: 'pre_feedforward_layernorm', suffix: 'pre_feedforward_layernorm.weight', shape: (c) => [c.hiddenSize] },
  { role: 'post_feedforward_layernorm', suffix: 'post_feedforward_layernorm.weight', shape: (c) => [c.hiddenSize] },
];

/** Baichuan 7B: q, k and v fused row-wise into one [3 * hidden, hidden] matrix (q rows first). */
const W_PACK: LayerTensorSpec = { role: 'W_pack', suffix: 'self_attn.W_pack.weight', shape: (c) => [3 * c.hiddenSize, c.hiddenSize] };

export const LAYER_TENSORS: Record<Architecture, LayerTensorSpec[]> = {
  LlamaForCausalLM: [...NORMS, ...SEPARATE_QKV, O_PROJ, O_BIAS, ...MLP],
  MistralForCausalLM: [...NORMS, ...SEPARATE_QKV, O_PROJ, ...MLP],
  Qwen2ForCausalLM: [...NORMS, ...SEPARATE_QKV, O_PROJ, ...MLP],
  Qwen3ForCausalLM: [...NORMS, ...SEPARATE_QKV, ...QK_NORM, O_PROJ, O_BIAS, ...MLP],
  BaichuanForCausalLM: [...NORMS, W_PACK, O_PROJ, ...MLP],
  // Llama's tensors (modeling_granite.py, modeling_smollm3.py: biases from attention_bias).
  GraniteForCausalLM: [...NORMS, ...SEPARATE_QKV, O_PROJ, O_BIAS, ...MLP],
  SmolLM3ForCausalLM: [...NORMS, ...SEPARATE_QKV, O_PROJ, O_BIAS, ...MLP],
  Olmo2ForCausalLM: [...SEPARATE_QKV, ...QK_NORM_PROJECTION, O_PROJ, O_BIAS, ...MLP, ...POST_NORMS],
  // The engine reads Phi-3's qkv_proj as Baichuan's W_pack role (q, k, v rows stacked).
  Phi3ForCausalLM: [...NORMS, QKV_PROJ, O_PROJ, GATE_UP_PROJ, MLP[2]!],
  Gemma2ForCausalLM: [...NORMS, ...GEMMA_NORMS, ...SEPARATE_QKV, O_PROJ, O_BIAS, ...MLP],
  Gemma3ForCausalLM: [...NORMS, ...GEMMA_NORMS, ...SEPARATE_QKV, ...QK_NORM, O_PROJ, O_BIAS, ...MLP],
  // The MLP tensors of MoE layers come from moeLayerSpecs (one set per expert).
  MixtralForCausalLM: [...NORMS, ...SEPARATE_QKV, O_PROJ],
  Qwen3MoeForCausalLM: [...NORMS, ...SEPARATE_QKV, ...QK_NORM, O_PROJ, O_BIAS],
};

/**
 * The MLP tensors of an MoE architecture's layer, by expert, under the checkpoints' names:
 * Mixtral's block_sparse_moe.gate and experts.<e>.w1 (gate) / w3 (up) / w2 (down), Qwen3-MoE's
 * mlp.gate and mlp.experts.<e>.gate_proj / up_proj / down_proj (transformers 5 fuses them into
 * 3D tensors when loading, from these names). A dense layer of Qwen3-MoE has the plain MLP.
 */
function moeLayerSpecs(c: ModelConfig, layer: number): LayerTensorSpec[] {
  const moe = c.moe!;
  if (moe.denseLayers.includes(layer)) return MLP;
  const I = moe.intermediateSize;
  const mixtral = c.architecture === 'MixtralForCausalLM';
  const prefix = mixtral ? 'block_sparse_moe' : 'mlp';
  const out: LayerTensorSpec[] = [{ role: 'moe_router', suffix: `${prefix}.gate.weight`, shape: () => [moe.numExperts, c.hiddenSize] }];
  for (let e = 0; e < moe.numExperts; e++) {
    const [g, u, d] = mixtral ? ['w1', 'w3', 'w2'] : ['gate_proj', 'up_proj', 'down_proj'];
    out.push(
      { role: `expert_gate.${e}`, suffix: `${prefix}.experts.${e}.${g}.weight`, shape: () => [I, c.hiddenSize] },
      { role: `expert_up.${e}`, suffix: `${prefix}.experts.${e}.${u}.weight`, shape: () => [I, c.hiddenSize] },
      { role: `expert_down.${e}`, suffix: `${prefix}.experts.${e}.${d}.weight`, shape: () => [c.hiddenSize, I] },
    );
  }
  return out;
}

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
  const specs = config.moe ? [...LAYER_TENSORS[config.architecture], ...moeLayerSpecs(config, layer)] : LAYER_TENSORS[config.architecture];
  return specs
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

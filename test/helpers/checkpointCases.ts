/**
 * The generated checkpoints that the engine's parity suite (test/engine/parity.test.ts, against
 * the float64 reference) and the transformers conformance suite (test/conformance/cases.ts) both
 * check: every architecture x dtype, RoPE scalings, sliding windows, biases, tied and sharded,
 * odd shapes, Baichuan 1 and 2, and (appended) issue 14's Granite, SmolLM3, OLMo 2, Phi-3,
 * Gemma 2/3, Mixtral and Qwen3-MoE with their config variants. One list, so the two suites cannot
 * drift apart.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { generateCheckpoint, type GenerateOptions } from '../../scripts/generate-checkpoint';

/** Vocabulary size of every case but the odd-shapes ones (131): the test sequences' id range. */
export const VOCAB = 96;
/** What every case shares: 3 layers (so a rewrite can drop the first, middle or last). */
export const CASE_BASE = { layers: 3, vocabSize: VOCAB, maxPositionEmbeddings: 256 } as const;
const base = CASE_BASE;

export interface CheckpointCase {
  name: string;
  opts: GenerateOptions;
  /** Edits config.json after generation: config shapes real checkpoints have that the generator does not write. */
  edit?: (config: Record<string, unknown>) => void;
}
export const CHECKPOINT_CASES: CheckpointCase[] = [];
const cases = CHECKPOINT_CASES;
const archs = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM', 'BaichuanForCausalLM'] as const;
for (const architecture of archs) {
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    // Mistral's default window (8) is far shorter than the longer sequences.
    cases.push({ name: `${architecture} ${dtype}`, opts: { ...base, architecture, dtype } });
  }
}
cases.push(
  { name: 'LlamaForCausalLM F32 rope linear', opts: { ...base, architecture: 'LlamaForCausalLM', dtype: 'F32', ropeScaling: 'linear' } },
  // original_max_position_embeddings = 64 with head_dim 8: one frequency in each llama3 band.
  { name: 'LlamaForCausalLM BF16 rope llama3', opts: { ...base, architecture: 'LlamaForCausalLM', dtype: 'BF16', ropeScaling: 'llama3' } },
  { name: 'LlamaForCausalLM F16 tied, 3 shards', opts: { ...base, architecture: 'LlamaForCausalLM', dtype: 'F16', tie: true, shards: 3 } },
  { name: 'MistralForCausalLM F32 window 33', opts: { ...base, architecture: 'MistralForCausalLM', dtype: 'F32', slidingWindow: 33 } },
  { name: 'Qwen2ForCausalLM F32 sliding window 20', opts: { ...base, architecture: 'Qwen2ForCausalLM', dtype: 'F32', slidingWindow: 20 } },
  { name: 'Qwen3ForCausalLM BF16 sliding window 50', opts: { ...base, architecture: 'Qwen3ForCausalLM', dtype: 'BF16', slidingWindow: 50 } },
  // Shapes that fill no GEMM tile (6 x 16 micro-tiles, K slices of 256, 256-column tiles): hidden
  // 72 and head_dim 12, intermediate 300 (two K slices for down_proj, a 12-column panel tail),
  // vocabulary 131, 243 tokens in all.
  ...(['LlamaForCausalLM', 'Qwen2ForCausalLM'] as const).map((architecture, i) => ({
    name: `${architecture} ${i ? 'BF16' : 'F32'} odd shapes`,
    opts: {
      ...base, architecture, dtype: i ? 'BF16' as const : 'F32' as const,
      hiddenSize: 72, numAttentionHeads: 6, numKeyValueHeads: 2, intermediateSize: 300, vocabSize: 131,
    },
  })),
  {
    // Qwen2.5's published configs: a window is named but use_sliding_window is false, so HF
    // attends to everything.
    name: 'Qwen2ForCausalLM F32 window named but disabled',
    opts: { ...base, architecture: 'Qwen2ForCausalLM', dtype: 'F32' },
    edit: (c) => { c.sliding_window = 8; c.use_sliding_window = false; c.max_window_layers = 0; delete c.layer_types; },
  },
  {
    // Older Qwen2 configs have no layer_types: max_window_layers 0 puts every layer in the window.
    name: 'Qwen2ForCausalLM BF16 window from max_window_layers',
    opts: { ...base, architecture: 'Qwen2ForCausalLM', dtype: 'BF16', slidingWindow: 20 },
    edit: (c) => { delete c.layer_types; },
  },
  // attention_bias: q/k/v AND o_proj biases (Qwen2's q/k/v biases are covered above).
  { name: 'LlamaForCausalLM F32 attention_bias', opts: { ...base, architecture: 'LlamaForCausalLM', dtype: 'F32', attentionBias: true } },
  { name: 'LlamaForCausalLM BF16 attention_bias', opts: { ...base, architecture: 'LlamaForCausalLM', dtype: 'BF16', attentionBias: true } },
  { name: 'Qwen3ForCausalLM F32 attention_bias', opts: { ...base, architecture: 'Qwen3ForCausalLM', dtype: 'F32', attentionBias: true } },
  // head_dim 64 and 72: the attention kernels' full register tiles (64 floats), single vectors and
  // a scalar tail of head_dim, which head_dim 8..16 above do not reach.
  {
    name: 'LlamaForCausalLM F32 head_dim 64',
    opts: { ...base, architecture: 'LlamaForCausalLM', dtype: 'F32', hiddenSize: 256, numAttentionHeads: 4, numKeyValueHeads: 2, intermediateSize: 128 },
  },
  {
    name: 'Qwen3ForCausalLM BF16 head_dim 72, sliding window 50',
    opts: { ...base, architecture: 'Qwen3ForCausalLM', dtype: 'BF16', hiddenSize: 64, numAttentionHeads: 3, numKeyValueHeads: 1, headDim: 72, slidingWindow: 50 },
  },
  // Baichuan 1's spelling: same tensors, plain lm_head (the plain cases above are Baichuan 2, NormHead).
  { name: 'BaiChuanForCausalLM F32 (Baichuan 1)', opts: { ...base, architecture: 'BaichuanForCausalLM', dtype: 'F32', baichuan1: true } },
  { name: 'BaiChuanForCausalLM BF16 (Baichuan 1)', opts: { ...base, architecture: 'BaichuanForCausalLM', dtype: 'BF16', baichuan1: true } },
  {
    name: 'MistralForCausalLM F16 sliding_window null',
    opts: { ...base, architecture: 'MistralForCausalLM', dtype: 'F16' },
    edit: (c) => { c.sliding_window = null; },
  },
);

// Issue 14's architectures, appended (the conformance suite assigns removals by position, so the
// cases above keep theirs): every dtype, then the variants.
for (const architecture of ['GraniteForCausalLM', 'SmolLM3ForCausalLM', 'Olmo2ForCausalLM', 'Phi3ForCausalLM', 'Gemma2ForCausalLM', 'Gemma3ForCausalLM',
  'MixtralForCausalLM', 'Qwen3MoeForCausalLM'] as const) {
  for (const dtype of ['F32', 'F16', 'BF16'] as const) cases.push({ name: `${architecture} ${dtype}`, opts: { ...base, architecture, dtype } });
}
cases.push(
  // granite-3.0-8b's residual and attention multipliers (0.22, 1/128), with biases. Its embedding
  // multiplier 12 scales embeddings initialised with std 0.02 (about 0.24 in all); ours have std 1,
  // so 0.24 keeps that magnitude. Its logits_scaling 16 would flatten this tiny model's logits
  // until deleting a layer hardly changes perplexity, so 2.
  {
    name: 'GraniteForCausalLM BF16 Granite-3 multipliers, attention_bias',
    opts: { ...base, architecture: 'GraniteForCausalLM', dtype: 'BF16', attentionBias: true, graniteMultipliers: { embedding: 0.24, residual: 0.22, attention: 0.0078125, logitsScaling: 2 } },
  },
  {
    // SmolLM3Config's own defaults: no no_rope_layers list (built from the interval: layer 2 has
    // no RoPE) and no tie_word_embeddings (true).
    name: 'SmolLM3ForCausalLM F32 no_rope_layers from the interval, tied by default',
    opts: { ...base, architecture: 'SmolLM3ForCausalLM', dtype: 'F32', tie: true },
    edit: (c) => { delete c.no_rope_layers; c.no_rope_layer_interval = 3; delete c.tie_word_embeddings; delete c.layer_types; },
  },
  { name: 'SmolLM3ForCausalLM BF16 sliding window 20', opts: { ...base, architecture: 'SmolLM3ForCausalLM', dtype: 'BF16', slidingWindow: 20 } },
  // OLMo 2 with attention_bias (q/k/v/o biases) and grouped-query attention (4 heads, 2 kv).
  { name: 'Olmo2ForCausalLM F32 attention_bias', opts: { ...base, architecture: 'Olmo2ForCausalLM', dtype: 'F32', attentionBias: true } },
  // Phi-4-mini's partial_rotary_factor 0.75 (head_dim 16: 12 rotated dimensions) with LongRoPE:
  // original_max_position_embeddings 64, so the 70- and 130-token sequences take the long factors.
  {
    name: 'Phi3ForCausalLM F32 partial rotary 0.75, longrope',
    opts: { ...base, architecture: 'Phi3ForCausalLM', dtype: 'F32', hiddenSize: 64, numAttentionHeads: 4, numKeyValueHeads: 2, partialRotaryFactor: 0.75, ropeScaling: 'longrope' },
  },
  { name: 'Phi3ForCausalLM BF16 longrope, sliding window 20', opts: { ...base, architecture: 'Phi3ForCausalLM', dtype: 'BF16', ropeScaling: 'longrope', slidingWindow: 20 } },
  // Gemma2Config's own defaults: soft-capping 50 / 30, layer_types from the alternation, tied.
  {
    name: 'Gemma2ForCausalLM F32 config defaults (softcaps 50/30, derived layer_types), tied',
    opts: { ...base, architecture: 'Gemma2ForCausalLM', dtype: 'F32', tie: true },
    edit: (c) => { for (const k of ['attn_logit_softcapping', 'final_logit_softcapping', 'layer_types', 'tie_word_embeddings']) delete c[k]; },
  },
  { name: 'Gemma2ForCausalLM BF16 attention_bias, 2 shards', opts: { ...base, architecture: 'Gemma2ForCausalLM', dtype: 'BF16', attentionBias: true, shards: 2 } },
  {
    // transformers 5's nested rope_parameters; sliding_window_pattern 2 instead of layer_types.
    name: 'Gemma3ForCausalLM F32 nested rope_parameters, sliding_window_pattern 2',
    opts: { ...base, architecture: 'Gemma3ForCausalLM', dtype: 'F32' },
    edit: (c) => {
      for (const k of ['rope_theta', 'rope_local_base_freq', 'rope_scaling', 'layer_types']) delete c[k];
      c.sliding_window_pattern = 2;
      c.rope_parameters = { full_attention: { rope_type: 'linear', factor: 4.0, rope_theta: 500000.0 }, sliding_attention: { rope_type: 'default', rope_theta: 20000.0 } };
    },
  },
  // Qwen3-MoE with dense layers among sparse ones (decoder_sparse_step 2: only layer 1 is
  // sparse), top-k weights not renormalised, 3 of 6 experts per token, biases.
  {
    name: 'Qwen3MoeForCausalLM F32 decoder_sparse_step 2, norm_topk_prob false, 6 experts top 3',
    opts: { ...base, architecture: 'Qwen3MoeForCausalLM', dtype: 'F32', attentionBias: true, moe: { experts: 6, topK: 3, normTopk: false, sparseStep: 2 } },
  },
  { name: 'Qwen3MoeForCausalLM BF16 mlp_only_layers [0]', opts: { ...base, architecture: 'Qwen3MoeForCausalLM', dtype: 'BF16', moe: { mlpOnly: [0] } } },
  { name: 'MixtralForCausalLM BF16 sliding window 20, 8 experts', opts: { ...base, architecture: 'MixtralForCausalLM', dtype: 'BF16', slidingWindow: 20, moe: { experts: 8 } } },
);

/** Writes the case's checkpoint into dir: the generator's output, then the case's config.json edit. */
export async function generateCase(dir: string, c: Pick<CheckpointCase, 'opts' | 'edit'>): Promise<void> {
  await generateCheckpoint(dir, c.opts);
  if (!c.edit) return;
  const file = path.join(dir, 'config.json');
  const config = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  c.edit(config);
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
}

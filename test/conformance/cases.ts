/**
 * The generated checkpoints the conformance suite compares with transformers: the same set
 * test/engine/parity.test.ts checks against the project's own float64 reference (every
 * architecture x dtype, RoPE scalings, sliding windows, biases, tied and sharded, odd shapes,
 * Baichuan 1 and 2), plus a checkpoint with an all-zero embedding row (undefined cosines).
 * Each case also names the layers its rewrite deletes, varied so that the first, middle and
 * last layer and a non-contiguous pair all occur.
 */
import type { GenerateOptions } from '../../scripts/generate-checkpoint';

export interface ConformanceCase {
  name: string;
  opts: GenerateOptions;
  /** Edits config.json after generation: config shapes real checkpoints have that the generator does not write. */
  edit?: (config: Record<string, unknown>) => void;
  /** Zero this token's embedding row (F32 only): h_0 = 0 wherever it occurs. */
  zeroToken?: number;
  /** The layers the rewrite deletes. */
  remove: number[];
}

export const VOCAB = 96;
const base = { layers: 3, vocabSize: VOCAB, maxPositionEmbeddings: 256 } as const;
const REMOVALS = [[1], [0, 2], [2], [0]];

type Spec = Omit<ConformanceCase, 'remove'>;
const specs: Spec[] = [];
const archs = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM', 'BaichuanForCausalLM'] as const;
for (const architecture of archs) {
  for (const dtype of ['F32', 'F16', 'BF16'] as const) specs.push({ name: `${architecture} ${dtype}`, opts: { ...base, architecture, dtype } });
}
specs.push(
  { name: 'LlamaForCausalLM F32 rope linear', opts: { ...base, architecture: 'LlamaForCausalLM', dtype: 'F32', ropeScaling: 'linear' } },
  { name: 'LlamaForCausalLM BF16 rope llama3', opts: { ...base, architecture: 'LlamaForCausalLM', dtype: 'BF16', ropeScaling: 'llama3' } },
  { name: 'LlamaForCausalLM F16 tied, 3 shards', opts: { ...base, architecture: 'LlamaForCausalLM', dtype: 'F16', tie: true, shards: 3 } },
  { name: 'MistralForCausalLM F32 window 33', opts: { ...base, architecture: 'MistralForCausalLM', dtype: 'F32', slidingWindow: 33 } },
  { name: 'Qwen2ForCausalLM F32 sliding window 20', opts: { ...base, architecture: 'Qwen2ForCausalLM', dtype: 'F32', slidingWindow: 20 } },
  { name: 'Qwen3ForCausalLM BF16 sliding window 50', opts: { ...base, architecture: 'Qwen3ForCausalLM', dtype: 'BF16', slidingWindow: 50 } },
  ...(['LlamaForCausalLM', 'Qwen2ForCausalLM'] as const).map((architecture, i) => ({
    name: `${architecture} ${i ? 'BF16' : 'F32'} odd shapes`,
    opts: {
      ...base, architecture, dtype: i ? 'BF16' as const : 'F32' as const,
      hiddenSize: 72, numAttentionHeads: 6, numKeyValueHeads: 2, intermediateSize: 300, vocabSize: 131,
    },
  })),
  {
    // Qwen2.5's published configs: a window is named but use_sliding_window is false.
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
  { name: 'LlamaForCausalLM F32 attention_bias', opts: { ...base, architecture: 'LlamaForCausalLM', dtype: 'F32', attentionBias: true } },
  { name: 'LlamaForCausalLM BF16 attention_bias', opts: { ...base, architecture: 'LlamaForCausalLM', dtype: 'BF16', attentionBias: true } },
  { name: 'Qwen3ForCausalLM F32 attention_bias', opts: { ...base, architecture: 'Qwen3ForCausalLM', dtype: 'F32', attentionBias: true } },
  {
    name: 'LlamaForCausalLM F32 head_dim 64',
    opts: { ...base, architecture: 'LlamaForCausalLM', dtype: 'F32', hiddenSize: 256, numAttentionHeads: 4, numKeyValueHeads: 2, intermediateSize: 128 },
  },
  {
    name: 'Qwen3ForCausalLM BF16 head_dim 72, sliding window 50',
    opts: { ...base, architecture: 'Qwen3ForCausalLM', dtype: 'BF16', hiddenSize: 64, numAttentionHeads: 3, numKeyValueHeads: 1, headDim: 72, slidingWindow: 50 },
  },
  { name: 'BaiChuanForCausalLM F32 (Baichuan 1)', opts: { ...base, architecture: 'BaichuanForCausalLM', dtype: 'F32', baichuan1: true } },
  { name: 'BaiChuanForCausalLM BF16 (Baichuan 1)', opts: { ...base, architecture: 'BaichuanForCausalLM', dtype: 'BF16', baichuan1: true } },
  {
    name: 'MistralForCausalLM F16 sliding_window null',
    opts: { ...base, architecture: 'MistralForCausalLM', dtype: 'F16' },
    edit: (c) => { c.sliding_window = null; },
  },
  { name: 'LlamaForCausalLM F32 zero embedding row', opts: { ...base, architecture: 'LlamaForCausalLM', dtype: 'F32' }, zeroToken: 0 },
);

export const CASES: ConformanceCase[] = specs.map((s, i) => ({ ...s, remove: REMOVALS[i % REMOVALS.length]! }));

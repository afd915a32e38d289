/**
 * The generated checkpoints that the engine's parity suite (test/engine/parity.test.ts, against
 * the float64 reference) and the transformers conformance suite (test/conformance/cases.ts) both
 * check: every architecture x dtype, RoPE scalings, sliding windows, biases, tied and sharded,
 * odd shapes, Baichuan 1 and 2. One list, so the two suites cannot drift apart.
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

/** Writes the case's checkpoint into dir: the generator's output, then the case's config.json edit. */
export async function generateCase(dir: string, c: Pick<CheckpointCase, 'opts' | 'edit'>): Promise<void> {
  await generateCheckpoint(dir, c.opts);
  if (!c.edit) return;
  const file = path.join(dir, 'config.json');
  const config = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  c.edit(config);
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
}

/**
 * The generated checkpoints the conformance suite compares with transformers: the list
 * test/engine/parity.test.ts checks against the project's own float64 reference
 * (test/helpers/checkpointCases.ts: every architecture x dtype, RoPE scalings, sliding windows,
 * biases, tied and sharded, odd shapes, Baichuan 1 and 2), plus a checkpoint with an all-zero
 * embedding row (undefined cosines).
 * Each case also names the layers its rewrite deletes, varied so that the first, middle and
 * last layer and a non-contiguous pair all occur.
 */
import type { GenerateOptions } from '../../scripts/generate-checkpoint';
import { CASE_BASE, CHECKPOINT_CASES } from '../helpers/checkpointCases';

export { VOCAB } from '../helpers/checkpointCases';

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

const REMOVALS = [[1], [0, 2], [2], [0]];

type Spec = Omit<ConformanceCase, 'remove'> & { remove?: number[] };
const specs: Spec[] = [
  ...CHECKPOINT_CASES,
  // Its removal as when it followed the first 33 cases (issue 14's cases were appended since).
  { name: 'LlamaForCausalLM F32 zero embedding row', opts: { ...CASE_BASE, architecture: 'LlamaForCausalLM', dtype: 'F32' }, zeroToken: 0, remove: [0, 2] },
];

/**
 * Cases whose positional removal changes this random model's perplexity by less than the suite's
 * sanity bound (deleting must move mean NLL by > 1e-3, or agreement would prove nothing).
 */
const REMOVAL_OVERRIDES: Record<string, number[]> = {
  'Phi3ForCausalLM F32': [0, 2],
  // Also the interesting cut: the dense layer goes, so mlp_only_layers must become [].
  'Qwen3MoeForCausalLM BF16 mlp_only_layers [0]': [0, 1],
};

export const CASES: ConformanceCase[] = specs.map((s, i) => ({ ...s, remove: s.remove ?? REMOVAL_OVERRIDES[s.name] ?? REMOVALS[i % REMOVALS.length]! }));

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

type Spec = Omit<ConformanceCase, 'remove'>;
const specs: Spec[] = [
  ...CHECKPOINT_CASES,
  { name: 'LlamaForCausalLM F32 zero embedding row', opts: { ...CASE_BASE, architecture: 'LlamaForCausalLM', dtype: 'F32' }, zeroToken: 0 },
];

export const CASES: ConformanceCase[] = specs.map((s, i) => ({ ...s, remove: REMOVALS[i % REMOVALS.length]! }));

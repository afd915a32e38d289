/**
 * Properties the engine must satisfy whatever the reference says:
 * 1. Skipping layers at run time == evaluating the checkpoint rewritten without them. The two
 *    paths run the same kernels on the same bytes in the same order, so the results are expected
 *    to be bit-identical (checked with toBe), not merely close.
 * 2. Scores and perplexity do not depend on the thread count, to the last bit (DESIGN.md:
 *    statistics are reduced in a fixed order).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generateCheckpoint, type GenerateOptions } from '../../scripts/generate-checkpoint';
import { rewriteCheckpoint } from '../../lib/prune/rewrite';
import { scoreLayers } from '../../lib/scoring/scoreLayers';
import { perplexity } from '../../lib/eval/perplexity';
import { stories260kDir } from '../helpers/paths';
import { randomSequences } from '../reference/sequences';
import { loadGoldenTokens } from '../helpers/golden';

const VOCAB = 96;
const sequences = randomSequences([3, 41, 77, 130], VOCAB, 11);
/** The first 4 golden stories (up to 256 tokens each) for the real model. */
const stories = (loadGoldenTokens()).slice(0, 4);

const generated: { name: string; opts: GenerateOptions; skip: number[] }[] = [
  { name: 'llama-f32', opts: { architecture: 'LlamaForCausalLM', dtype: 'F32', layers: 5, vocabSize: VOCAB, maxPositionEmbeddings: 256 }, skip: [1, 3] },
  { name: 'qwen3-bf16-sharded', opts: { architecture: 'Qwen3ForCausalLM', dtype: 'BF16', layers: 4, shards: 3, vocabSize: VOCAB, maxPositionEmbeddings: 256 }, skip: [0, 3] },
  { name: 'mistral-f16', opts: { architecture: 'MistralForCausalLM', dtype: 'F16', layers: 4, vocabSize: VOCAB, maxPositionEmbeddings: 256 }, skip: [2] },
];

let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-props-'));
});
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

async function expectSkipEqualsRewrite(src: string, seqs: number[][], skip: number[], out: string): Promise<void> {
  const skipped = await perplexity(src, seqs, { skipLayers: skip, threads: 2 });
  await rewriteCheckpoint(src, out, { removeLayers: skip });
  const rewritten = await perplexity(out, seqs, { threads: 2 });
  expect(rewritten.predictions).toBe(skipped.predictions);
  expect(rewritten.perplexity).toBe(skipped.perplexity);
  expect(rewritten.meanNll).toBe(skipped.meanNll);
  expect(rewritten.logitsSum).toBe(skipped.logitsSum);
  // Sanity: the property is not vacuous (skipping changed the model).
  const full = await perplexity(src, seqs, { threads: 2 });
  expect(full.perplexity).not.toBe(skipped.perplexity);
}

describe('skipping layers at run time equals rewriting the checkpoint without them', () => {
  test.each(generated)('$name, skip $skip', async ({ name, opts, skip }) => {
    const src = path.join(root, name);
    await generateCheckpoint(src, opts);
    await expectSkipEqualsRewrite(src, sequences, skip, path.join(root, `${name}-pruned`));
  });

  test('stories260k, skip 1,3', async () => {
    await expectSkipEqualsRewrite(stories260kDir, stories, [1, 3], path.join(root, 'stories260k-pruned'));
  });
});

describe('results are bit-identical with 1 and 2 threads', () => {
  const models = (): [string, number[][]][] => [
    [path.join(root, 'threads-qwen2'), sequences],
    [stories260kDir, stories],
  ];

  beforeAll(async () => {
    // Wider than the default fixture so that GEMMs and attention really split across threads.
    await generateCheckpoint(path.join(root, 'threads-qwen2'), {
      architecture: 'Qwen2ForCausalLM', dtype: 'F16', layers: 3, vocabSize: VOCAB, maxPositionEmbeddings: 256,
      hiddenSize: 128, intermediateSize: 352, numAttentionHeads: 8, numKeyValueHeads: 2,
    });
  });

  test('scores (every raw sum) and last-token states', async () => {
    for (const [dir, seqs] of models()) {
      const one = await scoreLayers(dir, seqs, { threads: 1, keepLastTokenStates: true });
      const two = await scoreLayers(dir, seqs, { threads: 2, keepLastTokenStates: true });
      expect(two.layers).toEqual(one.layers);
      // toEqual on numbers uses Object.is: equal to the last bit.
      expect(Buffer.from(two.lastTokenStates!.data.buffer).equals(Buffer.from(one.lastTokenStates!.data.buffer))).toBe(true);
    }
  });

  test('perplexity', async () => {
    for (const [dir, seqs] of models()) {
      const one = await perplexity(dir, seqs, { threads: 1, skipLayers: [1] });
      const two = await perplexity(dir, seqs, { threads: 2, skipLayers: [1] });
      expect(two).toEqual(one);
    }
  });
});

/**
 * Mixtral and Qwen3-MoE (issue 14), beyond the parity and conformance cases
 * (test/helpers/checkpointCases.ts): MixtralConfig / Qwen3MoeConfig defaults and refusals, the
 * sparse/dense layer rule and the rewrite's explicit mlp_only_layers, skip = rewrite bit for bit,
 * thread-count invariance, that routing choices change the numbers as the float64 reference says,
 * inspect's experts and active parameters, the bench's MoE preset, and the refusals (CUDA,
 * --heal). The bf16 fast mode is checked with every other case in precision-bf16.test.ts.
 */
import * as path from 'node:path';
import { generatedConfigJson, type GenerateOptions } from '../../scripts/generate-checkpoint';
import { resolveConfig } from '../../lib/checkpoint/config';
import { layerTensorSpecs } from '../../lib/checkpoint/architectures';
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import { formatInspectReport, inspectCheckpoint } from '../../lib/checkpoint/inspect';
import { editConfig } from '../../lib/prune/configEdit';
import { rewriteCheckpoint } from '../../lib/prune/rewrite';
import { gatherHealSums, removedBlocks } from '../../lib/prune/heal';
import { perplexity } from '../../lib/eval/perplexity';
import { scoreLayers } from '../../lib/scoring/scoreLayers';
import { moeShape } from '../../lib/bench/shapes';
import { layerGemms } from '../../lib/bench/flops';
import { main } from '../../lib/cli/main';
import { capture } from '../helpers/io';
import { randomSequences } from '../reference/sequences';
import { referencePerplexity } from '../reference/forward64';
import { generatedConfig, refusal, scratchCheckpoints } from '../helpers/archSuite';

const VOCAB = 96;
const sequences = randomSequences([3, 41, 77], VOCAB, 5);
const base = { vocabSize: VOCAB, maxPositionEmbeddings: 256 } as const;
const mixtral: GenerateOptions = { ...base, architecture: 'MixtralForCausalLM', dtype: 'F32', layers: 3 };
const qwen3moe: GenerateOptions = { ...base, architecture: 'Qwen3MoeForCausalLM', dtype: 'F32', layers: 3 };

const scratch = scratchCheckpoints('shortgpt-moe-');
const generate = scratch.generate;

describe('config.json and the tensor table', () => {
  test('MixtralConfig defaults: 8 experts, 2 per token, renormalised; per-expert w1/w3/w2 tensors', () => {
    const c = generatedConfig({ ...mixtral, numAttentionHeads: 8, hiddenSize: 64 }, (raw) => {
      for (const k of ['num_local_experts', 'num_experts_per_tok', 'num_key_value_heads', 'rope_theta', 'rms_norm_eps']) delete raw[k];
    });
    expect(c.moe).toEqual({ numExperts: 8, topK: 2, intermediateSize: 48, normTopkProb: true, denseLayers: [] });
    expect([c.numKeyValueHeads, c.ropeTheta, c.rmsNormEps]).toEqual([8, 1e6, 1e-5]);
    const names = layerTensorSpecs(c, 2).map((s) => s.name);
    expect(names).toContain('model.layers.2.block_sparse_moe.gate.weight');
    expect(names).toContain('model.layers.2.block_sparse_moe.experts.7.w2.weight');
    expect(names.filter((n) => n.includes('.experts.'))).toHaveLength(24);
  });

  test('Qwen3MoeConfig: sparse iff not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0', () => {
    const c = generatedConfig({ ...qwen3moe, layers: 6, moe: { sparseStep: 2, mlpOnly: [3] } });
    expect(c.moe!.denseLayers).toEqual([0, 2, 3, 4]);
    expect(layerTensorSpecs(c, 0).map((s) => s.role)).toContain('gate_proj');
    expect(layerTensorSpecs(c, 1).map((s) => s.role)).toContain('expert_down.3');
    // Qwen3MoeConfig's head_dim defaults to hidden / heads, not Qwen3's 128.
    expect(generatedConfig(qwen3moe, (raw) => { delete raw.head_dim; }).headDim).toBe(8);
    const bad = refusal(() => generatedConfig(qwen3moe, (raw) => { raw.mlp_only_layers = [5]; }));
    expect(bad.code).toBe('ERR_CONFIG');
    expect(bad.message).toContain("'mlp_only_layers' must be a list of layer indices in [0, 3)");
    const topK = refusal(() => generatedConfig(mixtral, (raw) => { raw.num_experts_per_tok = 9; }));
    expect(topK.message).toContain("'num_experts_per_tok' (9) must not exceed num_local_experts (4)");
  });

  test('the rewrite writes Qwen3-MoE\'s dense layers as an explicit mlp_only_layers with decoder_sparse_step 1', () => {
    const raw = generatedConfigJson({ ...qwen3moe, layers: 6, moe: { sparseStep: 2, mlpOnly: [3] } });
    // Dense: 0, 2, 3, 4; sparse: 1, 5. Keep 1, 2, 4, 5 -> new 0 (sparse), 1 (dense), 2 (dense), 3 (sparse).
    const plan = { sourceLayers: 6, kept: [1, 2, 4, 5], removed: [0, 3], mapping: new Map([[1, 0], [2, 1], [4, 2], [5, 3]]) };
    const edit = editConfig(raw, plan);
    expect(edit.config.mlp_only_layers).toEqual([1, 2]);
    expect(edit.config.decoder_sparse_step).toBe(1);
    expect(edit.adjustedFields).toEqual(expect.arrayContaining(['mlp_only_layers', 'decoder_sparse_step']));
    expect(resolveConfig(edit.config, 'pruned/config.json').moe!.denseLayers).toEqual([1, 2]);
    // A list of exactly num_hidden_layers indices is not sliced as a per-layer list.
    const three = generatedConfigJson({ ...qwen3moe, moe: { mlpOnly: [0, 1, 2] } });
    const plan3 = { sourceLayers: 3, kept: [0, 2], removed: [1], mapping: new Map([[0, 0], [2, 1]]) };
    expect(editConfig(three, plan3).config.mlp_only_layers).toEqual([0, 1]);
  });
});

describe('engine', () => {
  test.each([
    ['mixtral-bf16', { ...mixtral, dtype: 'BF16', layers: 4 }, [1, 2]],
    ['qwen3moe-f16-step2', { ...qwen3moe, dtype: 'F16', layers: 5, moe: { sparseStep: 2, experts: 6, topK: 3, normTopk: false } }, [0]],
  ] as const)('skip = rewrite bit for bit: %s', async (name, opts, skip) => {
    const src = await generate(name, opts as GenerateOptions);
    const out = path.join(scratch.dir(), `${name}-pruned`);
    const skipped = await perplexity(src, sequences, { skipLayers: [...skip], threads: 2 });
    await rewriteCheckpoint(src, out, { removeLayers: [...skip] });
    const rewritten = await perplexity(out, sequences, { threads: 2 });
    expect([rewritten.perplexity, rewritten.meanNll, rewritten.logitsSum]).toEqual([skipped.perplexity, skipped.meanNll, skipped.logitsSum]);
    expect((await perplexity(src, sequences, { threads: 2 })).perplexity).not.toBe(skipped.perplexity);
  });

  test('bit-identical with 1 and 2 threads (token grouping by expert included)', async () => {
    const dir = await generate('moe-threads', { ...qwen3moe, dtype: 'BF16', moe: { experts: 8, topK: 3 } });
    const seqs = [...sequences, ...randomSequences([300], VOCAB, 3)];
    const [one, two] = [await scoreLayers(dir, seqs, { threads: 1 }), await scoreLayers(dir, seqs, { threads: 2 })];
    expect(two.layers).toEqual(one.layers);
    const [p1, p2] = [await perplexity(dir, seqs, { threads: 1 }), await perplexity(dir, seqs, { threads: 2 })];
    expect([p2.meanNll, p2.logitsSum]).toEqual([p1.meanNll, p1.logitsSum]);
  });

  test('routing choices change the numbers, and the engine follows the float64 reference for each', async () => {
    const variants: [string, GenerateOptions][] = [
      ['norm', { ...qwen3moe, moe: { normTopk: true } }],
      ['no-norm', { ...qwen3moe, moe: { normTopk: false } }],
      ['top1', { ...qwen3moe, moe: { topK: 1 } }],
      ['all-experts', { ...qwen3moe, moe: { topK: 4 } }],
    ];
    const nll: number[] = [];
    for (const [name, opts] of variants) {
      const dir = await generate(`route-${name}`, opts);
      const eng = await perplexity(dir, sequences, { threads: 2 });
      expect(Math.abs(eng.perplexity / referencePerplexity(dir, sequences).perplexity - 1)).toBeLessThan(1e-5);
      nll.push(eng.meanNll);
    }
    for (let i = 1; i < nll.length; i++) expect(Math.abs(nll[i]! - nll[0]!)).toBeGreaterThan(1e-4);
  });
});

describe('inspect, bench, refusals', () => {
  test('inspect: experts, experts per token, dense layers and active parameters per token', async () => {
    const dir = await generate('inspect-qwen3moe', { ...qwen3moe, moe: { mlpOnly: [0] } });
    const r = await inspectCheckpoint(dir);
    expect(r.warnings).toEqual([]);
    // Per expert: 3 * 24 * 32; two sparse layers run 2 of 4 experts.
    expect(r.moe).toEqual({ numExperts: 4, expertsPerToken: 2, denseLayers: [0], activeParametersPerToken: r.totalParameters - 2 * 2 * 3 * 24 * 32 });
    const text = formatInspectReport(r);
    expect(text).toContain('experts        4 per MoE layer, 2 per token; dense MLP layers 0');
    expect(text).toMatch(/active params {2}[\d,]+ per token/);
  });

  test('bench: the MoE preset is Mixtral-8x7B\'s shape; its FLOPs count the router and topK experts', () => {
    const { config: c } = moeShape();
    expect(c.architecture).toBe('MixtralForCausalLM');
    expect(c.moe).toEqual({ numExperts: 8, topK: 2, intermediateSize: 14336, normTopkProb: true, denseLayers: [] });
    const gemms = layerGemms(c);
    expect(gemms.find((g) => g.ops === 'router')).toMatchObject({ n: 8, k: 4096, count: 1 });
    // gate and up of 2 experts share one shape: 4 GEMMs of [14336, 4096]; down: 2.
    expect(gemms.find((g) => g.n === 14336)).toMatchObject({ count: 4 });
    expect(gemms.find((g) => g.k === 14336)).toMatchObject({ count: 2 });
  });

  test('bench --shape MoE takes no shape numbers (usage error, exit 2)', async () => {
    const io = capture();
    expect(await main(['bench', '--shape', 'MoE', '--hidden', '64'], io)).toBe(2);
    expect(io.err()).toContain("--shape MoE is Mixtral-8x7B's shape and takes no shape numbers; for another MoE shape use --config");
  });

  test('refusals name what is missing: CUDA, --heal', async () => {
    const dir = await generate('refuse-mixtral', mixtral);
    await expect(scoreLayers(dir, sequences, { threads: 2, device: 'cuda' })).rejects.toMatchObject({
      code: 'ERR_UNSUPPORTED', message: expect.stringContaining('mixture-of-experts MLP (Mixtral, Qwen3-MoE)'),
    });
    const ckpt = await openCheckpoint(dir);
    await expect(gatherHealSums(ckpt, [sequences.map((s) => Int32Array.from(s))], removedBlocks([2]), { engine: { threads: 2 } })).rejects.toMatchObject({
      code: 'ERR_UNSUPPORTED', message: expect.stringContaining('mixture-of-experts'),
    });
  });
});

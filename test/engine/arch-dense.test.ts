/**
 * Granite (multipliers), SmolLM3 (layers without RoPE), OLMo 2 (post-norms, whole-projection
 * q/k norms), Phi-3 (fused qkv/gate_up, partial rotary, LongRoPE) and Gemma 2/3 ((1 + w) norms,
 * sandwich norms, GeGLU, soft-capping, per-layer windows and RoPE bases), issue 14, beyond the parity and
 * conformance cases (test/helpers/checkpointCases.ts): config.json defaults and refusals as
 * transformers 5.x's GraniteConfig / SmolLM3Config define them, skip = rewrite bit for bit
 * (with a removal that breaks SmolLM3's no_rope_layer_interval period), that each feature changes
 * the numbers (so agreement with the references is not vacuous), inspect, and the CUDA backend's
 * refusal.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generatedConfigJson, type GenerateOptions } from '../../scripts/generate-checkpoint';
import { resolveConfig } from '../../lib/checkpoint/config';
import { inspectCheckpoint, formatInspectReport } from '../../lib/checkpoint/inspect';
import { editConfig } from '../../lib/prune/configEdit';
import { rewriteCheckpoint } from '../../lib/prune/rewrite';
import { perplexity } from '../../lib/eval/perplexity';
import { compareModels } from '../../lib/eval/compare';
import { scoreLayers } from '../../lib/scoring/scoreLayers';
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import { gatherHealSums, removedBlocks } from '../../lib/prune/heal';
import { healAndRemoveLayers } from '../../lib/prune/healRemoval';
import { randomSequences } from '../reference/sequences';
import { loadReferenceModel, referencePerplexity } from '../reference/forward64';
import { generatedConfig, refusal, scratchCheckpoints } from '../helpers/archSuite';

const VOCAB = 96;
const sequences = randomSequences([3, 41, 77], VOCAB, 5);
const base = { vocabSize: VOCAB, maxPositionEmbeddings: 256 } as const;

const scratch = scratchCheckpoints('shortgpt-arch14-');
const generate = scratch.generate;

describe('config.json', () => {
  test('Granite: the four multipliers, defaulting to 1 as GraniteConfig does', () => {
    const granite: GenerateOptions = { ...base, architecture: 'GraniteForCausalLM', dtype: 'F32' };
    expect(generatedConfig(granite).multipliers).toEqual({ embedding: 2.5, residual: 0.6, attention: 0.5, logitsScaling: 1.7 });
    const plain = generatedConfig(granite, (c) => {
      for (const k of ['embedding_multiplier', 'residual_multiplier', 'attention_multiplier', 'logits_scaling']) delete c[k];
    });
    expect(plain.multipliers).toEqual({ embedding: 1, residual: 1, attention: 1, logitsScaling: 1 });
    const bad = refusal(() => generatedConfig(granite, (c) => { c.logits_scaling = 0; }));
    expect(bad.code).toBe('ERR_CONFIG');
    expect(bad.message).toContain("'logits_scaling'");
  });

  test('SmolLM3: no_rope_layers (1 = RoPE), or built from no_rope_layer_interval; SmolLM3Config defaults', () => {
    const smol: GenerateOptions = { ...base, architecture: 'SmolLM3ForCausalLM', dtype: 'F32', layers: 6 };
    expect(generatedConfig(smol).noRopeLayers).toEqual([1, 3, 5]);
    const derived = generatedConfig(smol, (c) => {
      delete c.no_rope_layers;
      delete c.no_rope_layer_interval;
      delete c.tie_word_embeddings;
      delete c.num_key_value_heads;
      delete c.rope_theta;
    });
    // Interval 4: layer 3 only; tie_word_embeddings true, 4 kv heads, rope_theta 2e6 by default.
    expect(derived.noRopeLayers).toEqual([3]);
    expect(derived.tieWordEmbeddings).toBe(true);
    expect(derived.numKeyValueHeads).toBe(4);
    expect(derived.ropeTheta).toBe(2000000);
    expect(generatedConfig(smol, (c) => { c.no_rope_layers = [1, 1, 1, 1, 1, 1]; }).noRopeLayers).toBeUndefined();

    const wrongLength = refusal(() => generatedConfig(smol, (c) => { c.no_rope_layers = [1, 0]; }));
    expect(wrongLength.code).toBe('ERR_CONFIG');
    expect(wrongLength.message).toContain("'no_rope_layers' has 2 entries, but num_hidden_layers is 6");
    const badValue = refusal(() => generatedConfig(smol, (c) => { c.no_rope_layers = [1, 2, 1, 1, 1, 1]; }));
    expect(badValue.code).toBe('ERR_CONFIG');
    expect(badValue.message).toContain("'no_rope_layers' must hold 1 (RoPE) or 0 (no RoPE)");
  });

  test('SmolLM3: a sliding window on only some layers is refused (the engine has one window)', () => {
    // SmolLM3Config without layer_types slides exactly the no-RoPE layers.
    const e = refusal(() => generatedConfig({ ...base, architecture: 'SmolLM3ForCausalLM', dtype: 'F32', layers: 4, slidingWindow: 16 }, (c) => { delete c.layer_types; }));
    expect(e.code).toBe('ERR_UNSUPPORTED_ARCHITECTURE');
    expect(e.message).toContain('2 of 4');
  });
});

describe('the rewrite\'s config edit', () => {
  const plan = { sourceLayers: 6, kept: [1, 2, 3, 5], removed: [0, 4], mapping: new Map([[1, 0], [2, 1], [3, 2], [5, 3]]) };

  test('an explicit no_rope_layers is sliced to the kept layers', () => {
    const raw = generatedConfigJson({ ...base, architecture: 'SmolLM3ForCausalLM', dtype: 'F32', layers: 6 });
    const edit = editConfig(raw, plan);
    expect(edit.config.no_rope_layers).toEqual([0, 1, 0, 0]);
    expect(edit.slicedFields).toContain('no_rope_layers');
  });

  test('without the list, the interval would mean other layers: the explicit list is written', () => {
    const raw = generatedConfigJson({ ...base, architecture: 'SmolLM3ForCausalLM', dtype: 'F32', layers: 6 });
    delete raw.no_rope_layers;
    raw.no_rope_layer_interval = 3; // layers 2 and 5 have no RoPE
    const edit = editConfig(raw, plan);
    expect(edit.config.no_rope_layers).toEqual([1, 0, 1, 0]);
    expect(edit.adjustedFields).toContain('no_rope_layers');
    // The pruned config, read back, names the same layers (old 2 -> new 1, old 5 -> new 3).
    expect(resolveConfig(edit.config, 'pruned/config.json').noRopeLayers).toEqual([1, 3]);
  });
});

describe('skipping layers at run time equals rewriting the checkpoint without them (bit for bit)', () => {
  const cases: { name: string; opts: GenerateOptions; edit?: (c: Record<string, unknown>) => void; skip: number[] }[] = [
    { name: 'granite-bf16-bias', opts: { ...base, architecture: 'GraniteForCausalLM', dtype: 'BF16', layers: 5, attentionBias: true }, skip: [1, 3] },
    { name: 'smollm3-f16', opts: { ...base, architecture: 'SmolLM3ForCausalLM', dtype: 'F16', layers: 5 }, skip: [0, 3] },
    {
      name: 'smollm3-f32-interval',
      opts: { ...base, architecture: 'SmolLM3ForCausalLM', dtype: 'F32', layers: 6 },
      edit: (c) => { delete c.no_rope_layers; c.no_rope_layer_interval = 3; },
      skip: [0, 4],
    },
    { name: 'olmo2-bf16', opts: { ...base, architecture: 'Olmo2ForCausalLM', dtype: 'BF16', layers: 4 }, skip: [2] },
    {
      // No layer_types: the rewrite must write the kept layers' own types (the period would not).
      name: 'gemma2-bf16-derived-types',
      opts: { ...base, architecture: 'Gemma2ForCausalLM', dtype: 'BF16', layers: 5 },
      edit: (c) => { delete c.layer_types; },
      skip: [0, 3],
    },
    {
      name: 'gemma3-f32-pattern-3',
      opts: { ...base, architecture: 'Gemma3ForCausalLM', dtype: 'F32', layers: 6 },
      edit: (c) => { delete c.layer_types; c.sliding_window_pattern = 3; },
      skip: [1],
    },
    { name: 'phi3-f16-longrope', opts: { ...base, architecture: 'Phi3ForCausalLM', dtype: 'F16', layers: 4, ropeScaling: 'longrope', partialRotaryFactor: 0.5 }, skip: [0, 1] },
  ];
  test.each(cases)('$name, skip $skip', async ({ name, opts, edit, skip }) => {
    const src = await generate(name, opts, edit);
    const out = path.join(scratch.dir(), `${name}-pruned`);
    const skipped = await perplexity(src, sequences, { skipLayers: skip, threads: 2 });
    await rewriteCheckpoint(src, out, { removeLayers: skip });
    const rewritten = await perplexity(out, sequences, { threads: 2 });
    expect(rewritten.perplexity).toBe(skipped.perplexity);
    expect(rewritten.meanNll).toBe(skipped.meanNll);
    expect(rewritten.logitsSum).toBe(skipped.logitsSum);
    const full = await perplexity(src, sequences, { threads: 2 });
    expect(full.perplexity).not.toBe(skipped.perplexity);
  });
});

describe('results are bit-identical with 1 and 2 threads', () => {
  test.each([
    ['granite', { architecture: 'GraniteForCausalLM', attentionBias: true }],
    ['smollm3', { architecture: 'SmolLM3ForCausalLM' }],
    ['olmo2', { architecture: 'Olmo2ForCausalLM' }],
    ['phi3 longrope, partial rotary', { architecture: 'Phi3ForCausalLM', ropeScaling: 'longrope', partialRotaryFactor: 0.5 }],
    ['gemma2 soft-capping', { architecture: 'Gemma2ForCausalLM' }],
    ['gemma3', { architecture: 'Gemma3ForCausalLM' }],
  ] as const)('%s', async (name, extra) => {
    const dir = await generate(`threads-${name.replace(/[^a-z0-9]+/g, '-')}`, { ...base, dtype: 'BF16', layers: 3, ...extra } as GenerateOptions);
    // Three sequences of 41-77 tokens and one long enough for the long LongRoPE factors.
    const seqs = [...sequences, ...randomSequences([140], VOCAB, 2)];
    const [one, two] = [await scoreLayers(dir, seqs, { threads: 1 }), await scoreLayers(dir, seqs, { threads: 2 })];
    expect(two.layers).toEqual(one.layers);
    const [p1, p2] = [await perplexity(dir, seqs, { threads: 1 }), await perplexity(dir, seqs, { threads: 2 })];
    expect([p2.meanNll, p2.logitsSum]).toEqual([p1.meanNll, p1.logitsSum]);
  });
});

describe('each feature changes the numbers (same weights, feature off)', () => {
  test('Granite multipliers vs the same weights as Llama; SmolLM3 no-RoPE layers vs every layer with RoPE', async () => {
    const granite = await generate('granite-vs-llama', { ...base, architecture: 'GraniteForCausalLM', dtype: 'F32', layers: 3, seed: 9 });
    const llama = await generate('llama-vs-granite', { ...base, architecture: 'LlamaForCausalLM', dtype: 'F32', layers: 3, seed: 9 });
    expect(fs.readFileSync(path.join(granite, 'model.safetensors')).equals(fs.readFileSync(path.join(llama, 'model.safetensors')))).toBe(true);
    const [g, l] = [await perplexity(granite, sequences, { threads: 2 }), await perplexity(llama, sequences, { threads: 2 })];
    expect(Math.abs(g.meanNll - l.meanNll)).toBeGreaterThan(1e-2);
    // Each multiplier alone moves the float64 reference by far more than the parity tolerance.
    for (const key of ['embedding_multiplier', 'residual_multiplier', 'attention_multiplier', 'logits_scaling']) {
      const one = await generate(`granite-only-${key}`, { ...base, architecture: 'GraniteForCausalLM', dtype: 'F32', layers: 3, seed: 9 }, (c) => {
        for (const k of ['embedding_multiplier', 'residual_multiplier', 'attention_multiplier', 'logits_scaling']) if (k !== key) c[k] = 1;
      });
      const ref = referencePerplexity(one, sequences);
      const eng = await perplexity(one, sequences, { threads: 2 });
      expect(Math.abs(eng.perplexity / ref.perplexity - 1)).toBeLessThan(1e-5);
      expect(Math.abs(ref.meanNll - l.meanNll)).toBeGreaterThan(1e-3);
    }

    const smol = await generate('smol-norope', { ...base, architecture: 'SmolLM3ForCausalLM', dtype: 'F32', layers: 3, seed: 9 });
    const allRope = await generate('smol-allrope', { ...base, architecture: 'SmolLM3ForCausalLM', dtype: 'F32', layers: 3, seed: 9 }, (c) => { c.no_rope_layers = [1, 1, 1]; });
    const [a, b] = [await scoreLayers(smol, sequences, { threads: 2 }), await scoreLayers(allRope, sequences, { threads: 2 })];
    // Layer 1 has no RoPE in `smol`: layer 0 is identical, layer 1 differs.
    expect(a.layers[0]!.blockInfluence).toBe(b.layers[0]!.blockInfluence);
    expect(Math.abs(a.layers[1]!.blockInfluence - b.layers[1]!.blockInfluence)).toBeGreaterThan(1e-4);
  });
});

describe('Phi-3 RoPE', () => {
  const phi3 = (name: string, extra: Partial<GenerateOptions> = {}, edit?: (c: Record<string, unknown>) => void): Promise<string> =>
    generate(name, { ...base, architecture: 'Phi3ForCausalLM', dtype: 'F32', layers: 2, seed: 3, ...extra }, edit);

  test('config: partial_rotary_factor and longrope as Phi3Config reads them; bad factor lists refused', () => {
    const c = generatedConfig({ ...base, architecture: 'Phi3ForCausalLM', dtype: 'F32', hiddenSize: 64, partialRotaryFactor: 0.75, ropeScaling: 'longrope' });
    expect(c.rotaryDim).toBe(12);
    expect(c.fusedQkv && c.fusedGateUp).toBe(true);
    // max_position_embeddings 256 over original 64: factor 4, attention_factor sqrt(1 + ln 4 / ln 64).
    expect(c.ropeScaling).toMatchObject({ type: 'longrope', originalMaxPositionEmbeddings: 64, attentionFactor: Math.sqrt(1 + Math.log(4) / Math.log(64)) });
    const e = refusal(() => generatedConfig({ ...base, architecture: 'Phi3ForCausalLM', dtype: 'F32', ropeScaling: 'longrope' }, (raw) => {
      (raw.rope_scaling as Record<string, unknown>).long_factor = [1, 2];
    }));
    expect(e.code).toBe('ERR_CONFIG');
    expect(e.message).toContain("'rope_scaling.long_factor' must be a list of 4 positive numbers");
    const llama3 = refusal(() => generatedConfig({ ...base, architecture: 'Phi3ForCausalLM', dtype: 'F32', ropeScaling: 'llama3' }));
    expect(llama3.code).toBe('ERR_UNSUPPORTED_ROPE_SCALING');
  });

  test('the long factors apply exactly to sequences longer than original_max_position_embeddings', async () => {
    // original 64: a 64-token sequence takes the short factors, a 65-token one the long factors.
    const longrope = await phi3('phi3-longrope', { ropeScaling: 'longrope' });
    const shortOnly = await phi3('phi3-short-only', { ropeScaling: 'longrope' }, (c) => {
      const rs = c.rope_scaling as Record<string, unknown>;
      rs.long_factor = rs.short_factor;
    });
    const at64 = randomSequences([64], VOCAB, 8);
    const at65 = randomSequences([65], VOCAB, 8);
    const bi = async (dir: string, seqs: number[][]) => (await scoreLayers(dir, seqs, { threads: 2 })).layers.map((l) => l.blockInfluence);
    expect(await bi(longrope, at64)).toEqual(await bi(shortOnly, at64));
    const [a, b] = [await bi(longrope, at65), await bi(shortOnly, at65)];
    expect(Math.abs(a[0]! - b[0]!)).toBeGreaterThan(1e-4);
    // Both agree with the float64 reference, which makes the same choice independently.
    for (const dir of [longrope, shortOnly]) {
      const eng = await perplexity(dir, [...at64, ...at65], { threads: 2 });
      expect(Math.abs(eng.perplexity / referencePerplexity(dir, [...at64, ...at65]).perplexity - 1)).toBeLessThan(1e-5);
    }
  });

  test('partial rotary leaves the last dimensions of each head unrotated (changes the numbers)', async () => {
    const full = await phi3('phi3-full-rotary');
    const half = await phi3('phi3-half-rotary', { partialRotaryFactor: 0.5 });
    const [a, b] = [await perplexity(full, sequences, { threads: 2 }), await perplexity(half, sequences, { threads: 2 })];
    expect(Math.abs(a.meanNll - b.meanNll)).toBeGreaterThan(1e-4);
    expect(Math.abs(b.perplexity / referencePerplexity(half, sequences).perplexity - 1)).toBeLessThan(1e-5);
  });
});

describe('Gemma', () => {
  const gemma2: GenerateOptions = { ...base, architecture: 'Gemma2ForCausalLM', dtype: 'F32', layers: 4 };

  test('config: Gemma2Config / Gemma3TextConfig defaults and refusals', () => {
    const d2 = generatedConfig(gemma2, (c) => {
      for (const k of ['attn_logit_softcapping', 'final_logit_softcapping', 'layer_types', 'tie_word_embeddings', 'query_pre_attn_scalar', 'head_dim', 'num_key_value_heads']) delete c[k];
    });
    expect(d2.gemma).toEqual({ embeddingScale: 8, attentionScale: 1 / 16, attnLogitSoftcapping: 50, finalLogitSoftcapping: 30, fullAttentionLayers: [1, 3], localRopeTheta: null });
    expect([d2.tieWordEmbeddings, d2.headDim, d2.numKeyValueHeads, d2.slidingWindow]).toEqual([true, 256, 4, 20]);
    const g3: GenerateOptions = { ...base, architecture: 'Gemma3ForCausalLM', dtype: 'F32', layers: 7 };
    const d3 = generatedConfig(g3, (c) => {
      for (const k of ['attn_logit_softcapping', 'final_logit_softcapping', 'layer_types', 'rope_theta', 'rope_local_base_freq', 'rope_scaling']) delete c[k];
    });
    // Every 6th layer full; rope_theta 1e6 (global), 1e4 (local); no soft-capping.
    expect(d3.gemma).toMatchObject({ attnLogitSoftcapping: null, finalLogitSoftcapping: null, fullAttentionLayers: [5], localRopeTheta: 10000 });
    expect(d3.ropeTheta).toBe(1e6);
    expect(d3.ropeScaling).toEqual({ type: 'none' });
    const nested = generatedConfig(g3, (c) => {
      c.rope_parameters = { full_attention: { rope_type: 'linear', factor: 8, rope_theta: 1e6 }, sliding_attention: { rope_type: 'default', rope_theta: 1e4 } };
      delete c.rope_scaling;
    });
    expect(nested.ropeScaling).toEqual({ type: 'linear', factor: 8 });
    const act = refusal(() => generatedConfig(gemma2, (c) => { c.hidden_activation = 'gelu'; }));
    expect(act.code).toBe('ERR_UNSUPPORTED_ARCHITECTURE');
    expect(act.message).toContain("'hidden_activation'");
    const bidir = refusal(() => generatedConfig(g3, (c) => { c.use_bidirectional_attention = true; }));
    expect(bidir.message).toContain('use_bidirectional_attention');
    const local = refusal(() => generatedConfig(g3, (c) => { c.rope_parameters = { full_attention: { rope_type: 'default' }, sliding_attention: { rope_type: 'linear', factor: 2 } }; }));
    expect(local.code).toBe('ERR_UNSUPPORTED_ROPE_SCALING');
  });

  test('the rewrite writes derived layer_types out for the kept layers', () => {
    const raw = generatedConfigJson({ ...gemma2, layers: 6 });
    delete raw.layer_types;
    const plan = { sourceLayers: 6, kept: [1, 2, 3, 5], removed: [0, 4], mapping: new Map([[1, 0], [2, 1], [3, 2], [5, 3]]) };
    const edit = editConfig(raw, plan);
    expect(edit.config.layer_types).toEqual(['full_attention', 'sliding_attention', 'full_attention', 'full_attention']);
    expect(edit.adjustedFields).toContain('layer_types');
  });

  test('sqrt(hidden_size) is rounded to the embedding dtype (embed_scale.to(weight.dtype)), as the reference does', async () => {
    // hidden 40: sqrt = 6.3245...; torch.tensor(40 ** 0.5).to(bfloat16) = 6.3125, .to(float16) = 6.32421875.
    const run = async (dtype: 'F32' | 'BF16' | 'F16') => {
      const dir = await generate(`gemma-scale-${dtype}`, { ...gemma2, dtype, hiddenSize: 40, numAttentionHeads: 4, layers: 2 });
      const eng = await perplexity(dir, sequences, { threads: 2 });
      const ref = referencePerplexity(dir, sequences);
      expect(Math.abs(eng.perplexity / ref.perplexity - 1)).toBeLessThan(1e-5);
      return dir;
    };
    for (const dtype of ['F32', 'F16'] as const) await run(dtype);
    // BF16: h_0 is exactly the bf16 row times bf16(sqrt(40)) = 6.3125, in f32.
    const dir = await run('BF16');
    const states = (await scoreLayers(dir, [[5, 9]], { threads: 2, keepLastTokenStates: true })).lastTokenStates!;
    expect(states.layers[0]).toBe(-1);
    const row = loadReferenceModel(dir).tensors.get('model.embed_tokens.weight')!.data.subarray(9 * 40, 10 * 40);
    expect(Array.from(states.data.subarray(0, 40))).toEqual(Array.from(row, (x) => Math.fround(x * 6.3125)));
  });

  test('soft-capping changes the numbers (attention and final logits), and the engine follows the reference', async () => {
    const capped = await generate('gemma-capped', gemma2);
    const uncapped = await generate('gemma-uncapped', { ...gemma2, gemmaSoftcaps: { attention: null, final: null } });
    const attnOnly = await generate('gemma-attn-cap', { ...gemma2, gemmaSoftcaps: { attention: 3.5, final: null } });
    const [a, b, c] = await Promise.all([capped, uncapped, attnOnly].map((d) => perplexity(d, sequences, { threads: 2 })));
    expect(Math.abs(a!.meanNll - c!.meanNll)).toBeGreaterThan(1e-3); // final cap
    expect(Math.abs(b!.meanNll - c!.meanNll)).toBeGreaterThan(1e-3); // attention cap
    for (const [dir, got] of [[capped, a], [uncapped, b], [attnOnly, c]] as const) {
      expect(Math.abs(got!.perplexity / referencePerplexity(dir, sequences).perplexity - 1)).toBeLessThan(1e-5);
    }
  });
});

describe('eval --compare (the divergence pass) applies the final-logit pieces to both models', () => {
  test.each([
    ['Granite logits_scaling', { architecture: 'GraniteForCausalLM' }],
    ['Gemma 2 (1 + w) final norm and final soft-capping', { architecture: 'Gemma2ForCausalLM' }],
  ] as const)('%s: perplexities equal the perplexity pass, KL(self) = 0', async (name, extra) => {
    const dir = await generate(`compare-${name.replace(/[^A-Za-z0-9]+/g, '-')}`, { ...base, dtype: 'F32', layers: 3, ...extra } as GenerateOptions);
    const self = await compareModels(dir, dir, sequences, { threads: 2 });
    expect(self.kl.mean).toBe(0);
    const cut = await compareModels(dir, dir, sequences, { threads: 2, skipLayers: [1] });
    const [whole, skipped] = [await perplexity(dir, sequences, { threads: 2 }), await perplexity(dir, sequences, { threads: 2, skipLayers: [1] })];
    expect(Math.abs(cut.perplexity.reference / whole.perplexity - 1)).toBeLessThan(1e-12);
    expect(Math.abs(cut.perplexity.candidate / skipped.perplexity - 1)).toBeLessThan(1e-12);
    expect(cut.kl.mean).toBeGreaterThan(0);
  });
});

describe('inspect and the CUDA backend', () => {
  test('inspect shows Granite\'s multipliers and SmolLM3\'s no-RoPE layers', async () => {
    const granite = await inspectCheckpoint(await generate('inspect-granite', { ...base, architecture: 'GraniteForCausalLM', dtype: 'BF16', layers: 2 }));
    expect(granite.architecture).toBe('GraniteForCausalLM');
    expect(granite.multipliers).toEqual({ embedding: 2.5, residual: 0.6, attention: 0.5, logitsScaling: 1.7 });
    expect(formatInspectReport(granite)).toContain('multipliers    embedding x2.5, residual x0.6, attention scale 0.5, logits / 1.7');
    const smol = await inspectCheckpoint(await generate('inspect-smol', { ...base, architecture: 'SmolLM3ForCausalLM', dtype: 'F32', layers: 4 }));
    expect(smol.noRopeLayers).toEqual([1, 3]);
    expect(formatInspectReport(smol)).toContain('no RoPE        layers 1, 3');
    const olmo = await inspectCheckpoint(await generate('inspect-olmo2', { ...base, architecture: 'Olmo2ForCausalLM', dtype: 'F32', layers: 2 }));
    expect(olmo.architecture).toBe('Olmo2ForCausalLM');
    expect(olmo.warnings).toEqual([]);
    // Per layer: q, k, v, o (32x32, 16x32, 16x32, 32x32), q_norm 32, k_norm 16, MLP 3 x 48x32, two norms of 32.
    const perLayer = 2 * 1024 + 2 * 512 + 32 + 16 + 3 * 48 * 32 + 2 * 32;
    expect(olmo.parametersPerLayer).toEqual([perLayer, perLayer]);
    const phi = await inspectCheckpoint(await generate('inspect-phi3', { ...base, architecture: 'Phi3ForCausalLM', dtype: 'F32', layers: 2, partialRotaryFactor: 0.5, ropeScaling: 'longrope' }));
    expect(phi.warnings).toEqual([]);
    expect(phi.rotaryDim).toBe(4);
    // qkv_proj [64, 32], o_proj [32, 32], gate_up_proj [96, 32], down_proj [32, 48], two norms.
    expect(phi.parametersPerLayer).toEqual([64 * 32 + 32 * 32 + 96 * 32 + 32 * 48 + 64, 64 * 32 + 32 * 32 + 96 * 32 + 32 * 48 + 64]);
    const phiText = formatInspectReport(phi);
    expect(phiText).toContain('rotary dims    4 of head_dim 8 (partial rotary)');
    expect(phiText).toContain('rope scaling longrope (long factors above 64 tokens, attention factor 1.1547)');
    const gem = await inspectCheckpoint(await generate('inspect-gemma3', { ...base, architecture: 'Gemma3ForCausalLM', dtype: 'BF16', layers: 3 }));
    expect(gem.warnings).toEqual([]);
    expect(gem.gemma).toMatchObject({ fullAttentionLayers: [2], localRopeTheta: 10000 });
    const gemText = formatInspectReport(gem);
    expect(gemText).toContain('soft-capping   attention none, final logits none');
    expect(gemText).toContain("full attention layers 2; sliding layers' RoPE base 10000");
    expect(gemText).toContain('attention      sliding window 20');
    const llama = await inspectCheckpoint(await generate('inspect-llama', { ...base, architecture: 'LlamaForCausalLM', dtype: 'F32', layers: 2 }));
    expect('multipliers' in llama || 'noRopeLayers' in llama).toBe(false);
  });

  test('the CUDA backend refuses Granite and SmolLM3 naming the missing piece, on any machine', async () => {
    const granite = await generate('cuda-granite', { ...base, architecture: 'GraniteForCausalLM', dtype: 'F32', layers: 2 });
    await expect(scoreLayers(granite, sequences, { threads: 2, device: 'cuda' })).rejects.toMatchObject({
      code: 'ERR_UNSUPPORTED', message: expect.stringContaining("Granite's embedding/residual/attention multipliers"),
    });
    const smol = await generate('cuda-smol', { ...base, architecture: 'SmolLM3ForCausalLM', dtype: 'F32', layers: 2 });
    await expect(scoreLayers(smol, sequences, { threads: 2, device: 'cuda' })).rejects.toMatchObject({
      code: 'ERR_UNSUPPORTED', message: expect.stringContaining('SmolLM3 no_rope_layers'),
    });
    const phi = await generate('cuda-phi3', { ...base, architecture: 'Phi3ForCausalLM', dtype: 'F32', layers: 2 });
    await expect(scoreLayers(phi, sequences, { threads: 2, device: 'cuda' })).rejects.toMatchObject({
      code: 'ERR_UNSUPPORTED', message: expect.stringContaining("Phi-3's fused gate_up_proj"),
    });
    const gem = await generate('cuda-gemma3', { ...base, architecture: 'Gemma3ForCausalLM', dtype: 'F32', layers: 2 });
    await expect(scoreLayers(gem, sequences, { threads: 2, device: 'cuda' })).rejects.toMatchObject({
      code: 'ERR_UNSUPPORTED', message: expect.stringContaining("Gemma's (1 + w) norms"),
    });
    const olmo = await generate('cuda-olmo2', { ...base, architecture: 'Olmo2ForCausalLM', dtype: 'F32', layers: 2 });
    await expect(scoreLayers(olmo, sequences, { threads: 2, device: 'cuda' })).rejects.toMatchObject({
      code: 'ERR_UNSUPPORTED', message: expect.stringContaining("OLMo 2's post-norms"),
    });
  });
});

describe('--heal refuses what its least-squares fit does not model', () => {
  test.each([
    ['Granite (residual_multiplier)', 'GraniteForCausalLM', 'residual_multiplier'],
    ['OLMo 2 (post_feedforward_layernorm)', 'Olmo2ForCausalLM', 'post_feedforward_layernorm'],
    ['Gemma 2 (post_feedforward_layernorm)', 'Gemma2ForCausalLM', "Gemma's post_feedforward_layernorm"],
  ] as const)('%s', async (_label, architecture, named) => {
    const ckpt = await openCheckpoint(await generate(`heal-${architecture}`, { ...base, architecture, dtype: 'F32', layers: 4 }));
    const batches = [sequences.map((s) => Int32Array.from(s))];
    await expect(gatherHealSums(ckpt, batches, removedBlocks([2]), { engine: { threads: 2 } })).rejects.toMatchObject({
      code: 'ERR_UNSUPPORTED', message: expect.stringContaining(named),
    });
  });

  test.each([
    ['Gemma 2', 'Gemma2ForCausalLM', "Gemma's post_feedforward_layernorm"],
    ['Mixtral', 'MixtralForCausalLM', 'mixture-of-experts'],
  ] as const)('%s is refused by the library before any calibration work (ERR_HEAL_OPTIONS, nothing written)', async (_label, architecture, named) => {
    const ckpt = await openCheckpoint(await generate(`heal-early-${architecture}`, { ...base, architecture, dtype: 'F32', layers: 4 }));
    const out = path.join(os.tmpdir(), `sg-heal-early-${process.pid}-${architecture}`);
    // The calibration file does not exist: reaching the calibration pass would fail differently.
    await expect(healAndRemoveLayers(ckpt, [2], out, { calib: path.join(out, 'missing.txt') })).rejects.toMatchObject({
      code: 'ERR_HEAL_OPTIONS', message: expect.stringContaining(named),
    });
    expect(fs.existsSync(out)).toBe(false);
  });
});

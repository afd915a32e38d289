/**
 * Engine (f32, blocked attention, packed GEMM) vs the independent float64 reference
 * (test/reference/forward64.ts, itself checked against the golden fixture), for every architecture,
 * dtype and RoPE variant the generator makes. Sequence lengths 1, 5, 37, 70, 130 are no multiple
 * of any attention or GEMM block, and exceed the Mistral/Qwen sliding windows.
 *
 * Tolerances, from the worst cases measured over all cases below (SHORTGPT_PARITY_REPORT=1
 * prints them): statistics 9.5e-9 absolute, perplexity 2.5e-7 relative, last-token states
 * 6.5e-7 relative to the state's largest element. The limits keep a 40-100x margin for other CPUs
 * and kernels, and are far below what a semantic error produces: a sliding window off by one,
 * a llama3 band left unscaled or rms_norm_eps 1e-6 instead of the config's 1e-5 each fail them.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generateCheckpoint } from '../../scripts/generate-checkpoint';
import { CASE_BASE as base, CHECKPOINT_CASES as cases, generateCase, VOCAB, type CheckpointCase } from '../helpers/checkpointCases';
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import { scoreLayers } from '../../lib/scoring/scoreLayers';
import { perplexity } from '../../lib/eval/perplexity';
import { loadReferenceModel, referenceHiddenStates, referencePerplexity, referenceScores } from '../reference/forward64';
import { randomSequences } from '../reference/sequences';
import { tensorByteRange } from '../reference/safetensors64';
import { probeCuda } from '../../lib/engine/device';

/** Absolute limit on BI, angular distance and relative magnitude (all O(1) quantities). */
const STAT_TOL = 1e-6;
/** Relative limit on perplexity (and on |meanNll| differences, absolute). */
const PPL_TOL = 1e-5;
/** Last-token hidden states: max |engine - reference| / max |reference| over the state. */
const STATE_TOL = 1e-5;

const LENGTHS = [1, 5, 37, 70, 130];
const sequences = randomSequences(LENGTHS, VOCAB);
const measured: Record<string, { stat: number; ppl: number; state: number }> = {};
let root: string;

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-parity-'));
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
  if (process.env.SHORTGPT_PARITY_REPORT) console.log(JSON.stringify(measured, null, 1));
});

describe.each(cases)('engine vs float64 reference: $name', ({ name, opts, edit }) => {
  let dir: string;

  beforeAll(async () => {
    dir = path.join(root, name.replace(/[^A-Za-z0-9]+/g, '-'));
    await generateCase(dir, { opts, edit });
    measured[name] = { stat: 0, ppl: 0, state: 0 };
  });

  test('the checkpoint has the tensors that make its architecture different', () => {
    // Otherwise a generator that dropped, say, Qwen2's biases would make parity vacuous.
    const names = [...loadReferenceModel(dir).tensors.keys()];
    const expected: Record<string, string[]> = {
      LlamaForCausalLM: ['self_attn.q_proj.weight'],
      MistralForCausalLM: ['self_attn.q_proj.weight'],
      Qwen2ForCausalLM: ['self_attn.q_proj.bias', 'self_attn.k_proj.bias', 'self_attn.v_proj.bias'],
      Qwen3ForCausalLM: ['self_attn.q_norm.weight', 'self_attn.k_norm.weight'],
      BaichuanForCausalLM: ['self_attn.W_pack.weight'],
      // Their difference is in config.json (multipliers, no_rope_layers), not in the tensors.
      GraniteForCausalLM: ['self_attn.q_proj.weight'],
      SmolLM3ForCausalLM: ['self_attn.q_proj.weight'],
      Olmo2ForCausalLM: ['self_attn.q_norm.weight', 'self_attn.k_norm.weight', 'post_feedforward_layernorm.weight'],
      Phi3ForCausalLM: ['self_attn.qkv_proj.weight', 'mlp.gate_up_proj.weight'],
      Gemma2ForCausalLM: ['pre_feedforward_layernorm.weight', 'post_feedforward_layernorm.weight'],
      Gemma3ForCausalLM: ['pre_feedforward_layernorm.weight', 'post_feedforward_layernorm.weight', 'self_attn.q_norm.weight'],
      MixtralForCausalLM: ['block_sparse_moe.gate.weight', 'block_sparse_moe.experts.3.w2.weight'],
      // Layer 0 is dense in the decoder_sparse_step / mlp_only_layers cases: look at layer 1.
      Qwen3MoeForCausalLM: ['self_attn.q_norm.weight'],
    };
    for (const suffix of expected[opts.architecture]) expect(names).toContain(`model.layers.0.${suffix}`);
    if (opts.attentionBias) expect(names).toContain('model.layers.0.self_attn.o_proj.bias');
    expect(names.includes('lm_head.weight')).toBe(!opts.tie);
  });

  test('per-layer statistics and last-token hidden states', async () => {
    const ckpt = await openCheckpoint(dir);
    const engine = await scoreLayers(ckpt, sequences, { threads: 2, keepLastTokenStates: true });
    const reference = referenceScores(dir, sequences);
    expect(engine.tokens).toBe(LENGTHS.reduce((a, b) => a + b, 0));
    expect(engine.layers).toHaveLength(reference.length);
    let worst = 0;
    for (const ref of reference) {
      const got = engine.layers[ref.layer];
      expect(got.tokens).toBe(ref.tokens);
      expect(got.nanCount).toBe(0);
      for (const [a, b] of [
        [got.blockInfluence, ref.blockInfluence],
        [got.angularDistance, ref.angularDistance],
        [got.relativeMagnitude, ref.relativeMagnitude],
      ]) {
        worst = Math.max(worst, Math.abs(a - b));
      }
    }
    measured[name].stat = worst;
    expect(worst).toBeLessThan(STAT_TOL);

    // [layers.length, sequences, hidden], entry k following layer states.layers[k] (-1: embedding).
    const states = engine.lastTokenStates!;
    const hidden = states.hiddenSize;
    expect(states.layers).toEqual([-1, ...reference.map((r) => r.layer)]);
    let worstState = 0;
    sequences.forEach((seq, s) => {
      const ref = referenceHiddenStates(dir, seq);
      states.layers.forEach((layer, k) => {
        const want = ref[layer + 1].subarray((seq.length - 1) * hidden, seq.length * hidden);
        const got = states.data.subarray((k * sequences.length + s) * hidden, (k * sequences.length + s + 1) * hidden);
        let scale = 0;
        let diff = 0;
        for (let i = 0; i < hidden; i++) {
          scale = Math.max(scale, Math.abs(want[i]));
          diff = Math.max(diff, Math.abs(got[i] - want[i]));
        }
        worstState = Math.max(worstState, diff / scale);
      });
    });
    measured[name].state = worstState;
    expect(worstState).toBeLessThan(STATE_TOL);
  });

  test('perplexity, with and without a skipped layer', async () => {
    const ckpt = await openCheckpoint(dir);
    for (const skipLayers of [[], [1]]) {
      const engine = await perplexity(ckpt, sequences, { threads: 2, skipLayers });
      const reference = referencePerplexity(dir, sequences, skipLayers);
      expect(engine.predictions).toBe(reference.predictions);
      const rel = Math.abs(engine.perplexity / reference.perplexity - 1);
      measured[name].ppl = Math.max(measured[name].ppl, rel);
      expect(rel).toBeLessThan(PPL_TOL);
      expect(Math.abs(engine.meanNll - reference.meanNll)).toBeLessThan(PPL_TOL);
      // The checksum sums ~24k logits of either sign: compare against their magnitude.
      expect(Math.abs(engine.logitsSum - reference.logitsSum)).toBeLessThan(1e-4 * Math.max(1, Math.abs(reference.logitsSum)));
    }
  });
});

describe('Baichuan 2 NormHead vs Baichuan 1, same weights', () => {
  // The generator derives every tensor from the seed and the tensor's name, so the two spellings
  // hold identical bytes; only config.json's class name differs.
  test('Block Influence is identical; perplexity differs, as the reference says', async () => {
    const two = path.join(root, 'normhead-baichuan2');
    const one = path.join(root, 'normhead-baichuan1');
    await generateCheckpoint(two, { ...base, architecture: 'BaichuanForCausalLM', dtype: 'F32', seed: 77 });
    await generateCheckpoint(one, { ...base, architecture: 'BaichuanForCausalLM', dtype: 'F32', seed: 77, baichuan1: true });
    expect(fs.readFileSync(path.join(two, 'model.safetensors')).equals(fs.readFileSync(path.join(one, 'model.safetensors')))).toBe(true);
    expect((await openCheckpoint(two)).config.normalizedLmHead).toBe(true);
    expect((await openCheckpoint(one)).config.normalizedLmHead).toBe(false);

    const [s2, s1] = [await scoreLayers(two, sequences, { threads: 2 }), await scoreLayers(one, sequences, { threads: 2 })];
    expect(s2.layers.map((l) => l.blockInfluence)).toEqual(s1.layers.map((l) => l.blockInfluence));

    const [p2, p1] = [await perplexity(two, sequences, { threads: 2 }), await perplexity(one, sequences, { threads: 2 })];
    const [r2, r1] = [referencePerplexity(two, sequences), referencePerplexity(one, sequences)];
    // The NormHead's effect is far larger than the parity tolerance, so the cases above can tell.
    expect(Math.abs(r2.meanNll - r1.meanNll)).toBeGreaterThan(1e3 * PPL_TOL);
    expect(Math.abs(p2.perplexity / r2.perplexity - 1)).toBeLessThan(PPL_TOL);
    expect(Math.abs(p1.perplexity / r1.perplexity - 1)).toBeLessThan(PPL_TOL);
  });
});

// The o_proj bias and the NormHead on the CUDA backend (its host-side head normalisation lives in
// native/binding/cuda_binding.cc): F32 checkpoints with exact f32 GEMMs, against the same
// reference. Skipped, with the reason in the name, where no CUDA device is usable.
const CUDA_TOL = 1e-4;
const cudaProbe = probeCuda();
const cudaCases: CheckpointCase[] = [
  { name: 'LlamaForCausalLM F32 attention_bias', opts: { ...base, architecture: 'LlamaForCausalLM', dtype: 'F32', attentionBias: true } },
  { name: 'Qwen3ForCausalLM F32 attention_bias', opts: { ...base, architecture: 'Qwen3ForCausalLM', dtype: 'F32', attentionBias: true } },
  { name: 'BaichuanForCausalLM F32 (Baichuan 2, NormHead)', opts: { ...base, architecture: 'BaichuanForCausalLM', dtype: 'F32' } },
  { name: 'BaiChuanForCausalLM F32 (Baichuan 1)', opts: { ...base, architecture: 'BaichuanForCausalLM', dtype: 'F32', baichuan1: true } },
];
describe.each(cudaCases)('CUDA backend vs float64 reference: $name', ({ name, opts }) => {
  const run = cudaProbe.usable ? test : test.skip;
  run(cudaProbe.usable ? 'statistics and perplexity' : `statistics and perplexity (SKIPPED: ${cudaProbe.reason})`, async () => {
    const dir = path.join(root, `cuda-${name.replace(/[^A-Za-z0-9]+/g, '-')}`);
    await generateCheckpoint(dir, opts);
    const options = { threads: 2, device: 'cuda' as const, cuda: { f32Gemm: 'f32' as const } };
    const engine = await scoreLayers(dir, sequences, options);
    for (const ref of referenceScores(dir, sequences)) {
      expect(Math.abs(engine.layers[ref.layer].blockInfluence - ref.blockInfluence)).toBeLessThan(CUDA_TOL);
    }
    const ppl = await perplexity(dir, sequences, options);
    expect(Math.abs(ppl.perplexity / referencePerplexity(dir, sequences).perplexity - 1)).toBeLessThan(CUDA_TOL);
  });
});

describe('undefined cosines: a token whose embedding is all zeros', () => {
  // Token 0's embedding row is zeroed. Wherever it occurs h_0 = 0, so cos(h_0, h_1) is undefined
  // (counted as 0.5). At position 0 of a bias-free model the whole residual stream stays exactly
  // zero, so every layer sees an undefined cosine and a zero output there.
  const seqs = [[0, 7, 0, 12, 5, 0, 33], [4, 0, 9], [0]];

  test('statistics, NaN counts and perplexity match the reference', async () => {
    const dir = path.join(root, 'zero-embedding');
    await generateCheckpoint(dir, { ...base, architecture: 'LlamaForCausalLM', dtype: 'F32' });
    const file = path.join(dir, 'model.safetensors');
    const [begin] = tensorByteRange(file, 'model.embed_tokens.weight');
    const hidden = (JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { hidden_size: number }).hidden_size;
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(hidden * 4), 0, hidden * 4, begin);
    fs.closeSync(fd);

    const engine = await scoreLayers(dir, seqs, { threads: 2 });
    const reference = referenceScores(dir, seqs);
    expect(reference[0].nanCount).toBe(5);
    expect(reference[reference.length - 1].nanCount).toBe(2);
    for (const ref of reference) {
      const got = engine.layers[ref.layer];
      expect(got.nanCount).toBe(ref.nanCount);
      expect(Math.abs(got.blockInfluence - ref.blockInfluence)).toBeLessThan(STAT_TOL);
      expect(Math.abs(got.angularDistance - ref.angularDistance)).toBeLessThan(STAT_TOL);
      expect(Math.abs(got.relativeMagnitude - ref.relativeMagnitude)).toBeLessThan(STAT_TOL);
    }
    const ppl = await perplexity(dir, seqs, { threads: 2 });
    expect(Math.abs(ppl.perplexity / referencePerplexity(dir, seqs).perplexity - 1)).toBeLessThan(PPL_TOL);
  });
});

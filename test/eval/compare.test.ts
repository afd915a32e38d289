/**
 * compareModels / eval --compare: pooled and per-window perplexity, KL(reference || candidate)
 * mean and 95th percentile, and top-1 agreement, checked against the float64 reference
 * (test/reference/compare64.ts) with layers skipped on either side; identical models give KL 0
 * and agreement 1 exactly; the candidate's perplexity equals perplexity()'s bit for bit; a model
 * of another vocabulary is refused; the CLI's --json shape.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import type { Checkpoint } from '../../lib/checkpoint/types';
import { compareModels } from '../../lib/eval/compare';
import { quantile } from '../../lib/eval/compareStats';
import { perplexity } from '../../lib/eval/perplexity';
import { generateCheckpoint } from '../../scripts/generate-checkpoint';
import { loadGoldenTokens } from '../helpers/golden';
import { stories260kDir, tinyStoriesText } from '../helpers/paths';
import { referenceComparison, type RefTokenComparison } from '../reference/compare64';
import { randomSequences } from '../reference/sequences';

const CLI = path.join(__dirname, '..', 'prune', 'helpers', 'cli.js');
const golden = loadGoldenTokens().slice(0, 8);
let root: string;
let stories: Checkpoint;

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-compare-'));
  stories = await openCheckpoint(stories260kDir);
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** The pooled statistics of the float64 reference, over positions that predict a token. */
function pooled(ref: RefTokenComparison, sequences: readonly (readonly number[])[]) {
  const kls: number[] = [];
  let agree = 0;
  let ambiguous = 0;
  let nllRef = 0;
  let nllCand = 0;
  let row = 0;
  for (const s of sequences) {
    for (let p = 0; p + 1 < s.length; p++) {
      const r = row + p;
      kls.push(ref.kl[r]);
      nllRef -= ref.referenceLogprob[r];
      nllCand -= ref.logprob[r];
      if (ref.argmax[r] === ref.referenceArgmax[r]) agree++;
      // Where either model's top two logits are this close, f32 may pick the other one.
      if (ref.topGap[r] < 1e-3 || ref.referenceTopGap[r] < 1e-3) ambiguous++;
    }
    row += s.length;
  }
  const n = kls.length;
  return {
    n, ambiguous, klMean: kls.reduce((a, b) => a + b, 0) / n, klP95: quantile(Float64Array.from(kls), 0.95),
    agreement: agree / n, pplRef: Math.exp(nllRef / n), pplCand: Math.exp(nllCand / n),
  };
}

describe('compareModels', () => {
  test('a model against itself: KL exactly 0 and agreement exactly 1, pooled and per window; both perplexities equal perplexity()', async () => {
    const r = await compareModels(stories, stories, golden, { threads: 2 });
    const ppl = await perplexity(stories, golden, { threads: 2 });
    expect(r.kl).toEqual({ mean: 0, p95: 0 });
    expect(r.top1Agreement).toBe(1);
    expect(r.perplexity.reference).toBe(ppl.perplexity);
    expect(r.perplexity.candidate).toBe(ppl.perplexity);
    expect(r.predictions).toBe(ppl.predictions);
    expect(r.perWindow).toHaveLength(golden.length);
    for (const w of r.perWindow) {
      expect(w.kl).toEqual({ mean: 0, p95: 0 });
      expect(w.top1Agreement).toBe(1);
    }
  });

  test.each([
    { name: 'candidate without layer 2', skip: [2], refSkip: [] },
    { name: 'reference without layer 1, candidate without 3 and 4', skip: [3, 4], refSkip: [1] },
  ])('stories260k, $name: matches the float64 reference; candidate perplexity equals perplexity() bit for bit', async ({ skip, refSkip }) => {
    const r = await compareModels(stories, stories, golden, { threads: 2, skipLayers: skip, referenceSkipLayers: refSkip });
    const ref = pooled(referenceComparison(stories260kDir, stories260kDir, golden, refSkip, skip), golden);
    expect(r.predictions).toBe(ref.n);
    expect(Math.abs(r.kl.mean - ref.klMean) / ref.klMean).toBeLessThan(1e-4);
    expect(Math.abs(r.kl.p95 - ref.klP95) / ref.klP95).toBeLessThan(1e-4);
    expect(Math.abs(r.top1Agreement - ref.agreement)).toBeLessThanOrEqual(ref.ambiguous / ref.n);
    expect(Math.abs(r.perplexity.reference / ref.pplRef - 1)).toBeLessThan(1e-5);
    expect(Math.abs(r.perplexity.candidate / ref.pplCand - 1)).toBeLessThan(1e-5);
    expect(r.perplexity.candidate).toBe((await perplexity(stories, golden, { threads: 2, skipLayers: skip })).perplexity);
    expect(r.perplexity.reference).toBe((await perplexity(stories, golden, { threads: 2, skipLayers: refSkip })).perplexity);
    expect(r.kl.mean).toBeGreaterThan(0);
    expect(r.skipLayers).toEqual(skip);
    expect(r.referenceSkipLayers).toEqual(refSkip);
  });

  test('per-window statistics match the reference window by window', async () => {
    const seqs = golden.slice(0, 3);
    const r = await compareModels(stories, stories, seqs, { threads: 2, skipLayers: [2] });
    const ref = referenceComparison(stories260kDir, stories260kDir, seqs, [], [2]);
    let row = 0;
    seqs.forEach((s, i) => {
      const w = pooled(
        { ...ref, kl: ref.kl.subarray(row, row + s.length), logprob: ref.logprob.subarray(row, row + s.length), referenceLogprob: ref.referenceLogprob.subarray(row, row + s.length),
          argmax: ref.argmax.subarray(row, row + s.length), referenceArgmax: ref.referenceArgmax.subarray(row, row + s.length),
          topGap: ref.topGap.subarray(row, row + s.length), referenceTopGap: ref.referenceTopGap.subarray(row, row + s.length) },
        [s],
      );
      expect(r.perWindow[i].predictions).toBe(s.length - 1);
      expect(Math.abs(r.perWindow[i].kl.mean / w.klMean - 1)).toBeLessThan(1e-4);
      expect(Math.abs(r.perWindow[i].kl.p95 / w.klP95 - 1)).toBeLessThan(1e-4);
      expect(Math.abs(r.perWindow[i].perplexity.candidate / w.pplCand - 1)).toBeLessThan(1e-5);
      expect(Math.abs(r.perWindow[i].top1Agreement - w.agreement)).toBeLessThanOrEqual(w.ambiguous / w.n);
      row += s.length;
    });
  });

  test('two different checkpoints (a generated Qwen2 and a copy with another seed) match the reference', async () => {
    const a = path.join(root, 'qwen-a');
    const b = path.join(root, 'qwen-b');
    const opts = { architecture: 'Qwen2ForCausalLM' as const, dtype: 'BF16' as const, layers: 3, vocabSize: 96 };
    await generateCheckpoint(a, { ...opts, seed: 1 });
    await generateCheckpoint(b, { ...opts, seed: 2 });
    const seqs = randomSequences([1, 9, 60], 96, 11);
    const r = await compareModels(b, a, seqs, { threads: 1 });
    const ref = pooled(referenceComparison(a, b, seqs), seqs);
    expect(Math.abs(r.kl.mean / ref.klMean - 1)).toBeLessThan(1e-4);
    expect(Math.abs(r.perplexity.candidate / ref.pplCand - 1)).toBeLessThan(1e-5);
    expect(Math.abs(r.perplexity.reference / ref.pplRef - 1)).toBeLessThan(1e-5);
    // The 1-token window predicts nothing: its statistics are NaN, and it counts nowhere.
    expect(r.perWindow[0].predictions).toBe(0);
    expect(Number.isNaN(r.perWindow[0].kl.mean)).toBe(true);
    expect(r.predictions).toBe(8 + 59);
  });

  test('a model of another vocabulary is refused with ERR_VOCAB_MISMATCH naming both', async () => {
    const other = path.join(root, 'llama-96');
    await generateCheckpoint(other, { architecture: 'LlamaForCausalLM', dtype: 'F32', layers: 2, vocabSize: 96, hiddenSize: 64 });
    await expect(compareModels(other, stories, [[1, 2, 3]])).rejects.toMatchObject({
      code: 'ERR_VOCAB_MISMATCH', message: expect.stringMatching(/vocab_size 96.*vocab_size 512/),
    });
  });

  test('a model whose head computes differently (Gemma 2: 1 + w norm, final soft-capping) is refused with ERR_MODEL_MISMATCH', async () => {
    const llama = path.join(root, 'llama-h64');
    const gemma = path.join(root, 'gemma2-h64');
    await generateCheckpoint(llama, { architecture: 'LlamaForCausalLM', dtype: 'F32', layers: 2, vocabSize: 96, hiddenSize: 64 });
    await generateCheckpoint(gemma, { architecture: 'Gemma2ForCausalLM', dtype: 'F32', layers: 2, vocabSize: 96, hiddenSize: 64 });
    // Either order: the divergence pass would compute both heads with the candidate's spec.
    await expect(compareModels(gemma, llama, [[1, 2, 3]])).rejects.toMatchObject({ code: 'ERR_MODEL_MISMATCH', message: expect.stringContaining('gemma2-h64') });
    await expect(compareModels(llama, gemma, [[1, 2, 3]])).rejects.toMatchObject({ code: 'ERR_MODEL_MISMATCH', message: expect.stringContaining('final norm and lm_head') });
  });

  test('the CUDA backend is refused up front with ERR_UNSUPPORTED (it has no divergence pass)', async () => {
    await expect(compareModels(stories, stories, golden.slice(0, 1), { device: 'cuda' })).rejects.toMatchObject({
      code: 'ERR_UNSUPPORTED', message: expect.stringContaining('CPU backend only'),
    });
  });

  test('a skip layer out of range is ERR_LAYER_INDEX', async () => {
    await expect(compareModels(stories, stories, golden.slice(0, 1), { referenceSkipLayers: [5] })).rejects.toMatchObject({ code: 'ERR_LAYER_INDEX' });
  });
});

describe('eval --compare (CLI)', () => {
  function cli(args: string[]) {
    return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  }

  test('--json has the issue\'s shape, and its numbers are compareModels\'', async () => {
    const tokens = path.join(root, 'tokens.json');
    fs.writeFileSync(tokens, JSON.stringify(golden.slice(0, 4)));
    const run = cli(['eval', stories260kDir, '--compare', stories260kDir, '--tokens', tokens, '--skip-layers', '3', '--json', '--threads', '2']);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const doc = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(Object.keys(doc).slice(0, 4)).toEqual(['perplexity', 'kl', 'top1Agreement', 'predictions']);
    const lib = await compareModels(stories, stories, golden.slice(0, 4), { threads: 2, skipLayers: [3] });
    expect(doc.perplexity).toEqual(lib.perplexity);
    expect(doc.kl).toEqual(lib.kl);
    expect(doc.top1Agreement).toBe(lib.top1Agreement);
    expect(doc.predictions).toBe(lib.predictions);
    expect((doc.perWindow as unknown[]).length).toBe(4);
    expect(doc.candidate).toEqual({ model: stories260kDir, skipLayers: [3] });
  });

  test('--data: windows of the text through both models, printed for people', () => {
    const run = cli(['eval', stories260kDir, '--compare', stories260kDir, '--data', tinyStoriesText, '--samples', '4', '--skip-layers', '2', '--threads', '2']);
    expect(run.status).toBe(0);
    expect(run.stderr).toContain('data: ');
    expect(run.stdout).toMatch(/reference .*: perplexity \d+\.\d+\ncandidate .*\(layers 2 skipped\): perplexity \d+\.\d+ \(\+\d+\.\d+%\)\nKL\(reference \|\| candidate\): mean \S+ nats, p95 \S+ nats\ntop-1 agreement \d+\.\d+%  \(over [\d,]+ predictions, 4 windows\)\n$/);
  });

  test('usage errors exit 2: --compare-skip-layers without --compare, a layer ORIGINAL lacks', () => {
    const a = cli(['eval', stories260kDir, '--data', 'x.txt', '--compare-skip-layers', '1']);
    expect(a.status).toBe(2);
    expect(a.stderr).toContain('--compare-skip-layers needs --compare');
    const b = cli(['eval', stories260kDir, '--compare', stories260kDir, '--data', 'x.txt', '--compare-skip-layers', '9']);
    expect(b.status).toBe(2);
    expect(b.stderr).toContain('--compare-skip-layers: layer 9 does not exist');
  });
});
